"""The queues' own revoke, for ``jobstatus.cancel``: a registry of revokers.

A queued job need not wait for a worker to pick it up and refuse it: a queue
integration with a revoke or abort of its own registers a :data:`Revoker`
(:func:`register_revoker`, at import of its module or app setup), and every
cancel request that was applied is handed to the registered revokers with the
job's record, after it is recorded (``cancel_job`` reads it back and calls
:meth:`Revokers.revoke`).
A revoker's errors are logged, never raised: the request is recorded either way,
and the worker's start hook still refuses the job.

The record names no queue (SPEC reserves no key for it, and ``serialized_job``
is opt-in), so every revoker is offered every request and does nothing for a
job it does not recognise as its queue's (Celery: the record's ``name`` is a task
of an app the process knows).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ._record import Record

logger = logging.getLogger("jobstatus")

Revoker = Callable[[str, Record], None]
"""``revoke(job_id, record)``: stop a job through its queue's own means (Celery's
``revoke``, RQ's ``cancel``, ...). Called after a cancel request was recorded,
with the job's record as it is then (its ``status`` says whether it is queued or
working, its ``name`` which task it runs). The record names no queue, so a
revoker does nothing for a job it does not recognise as its queue's."""


class Revokers:
    """The revokers of the queue integrations imported in this process, by queue kind.

    Registering a kind again replaces its revoker (an integration imported twice,
    a test's stand-in). Each is tried in turn; none can stop the request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_kind: dict[str, Revoker] = {}

    def register(self, kind: str, revoke: Revoker) -> None:
        """Hand every applied cancel request to ``revoke`` (keyed by ``kind``)."""
        with self._lock:
            self._by_kind[kind] = revoke

    def unregister(self, kind: str) -> None:
        """Forget ``kind``'s revoker (no-op when there is none)."""
        with self._lock:
            self._by_kind.pop(kind, None)

    def __bool__(self) -> bool:
        return bool(self._by_kind)

    def revoke(self, job_id: str, record: Record) -> None:
        """Offer the request on ``job_id`` to every revoker; log what fails."""
        with self._lock:
            chosen = list(self._by_kind.items())
        for kind, revoke in chosen:
            try:
                revoke(job_id, record)
            except Exception:  # noqa: BLE001 - the request is recorded; the start hook refuses
                logger.warning("the %s revoke of job %r failed", kind, job_id, exc_info=True)


revokers = Revokers()


def register_revoker(kind: str, revoke: Revoker) -> None:
    """Let ``revoke(job_id, record)`` stop cancelled jobs through the queue ``kind``.

    For queue integrations: Celery registers ``app.control.revoke`` when it is
    imported. ``revoke`` runs in the process that requests the cancel, after the
    request is recorded, for every job whose request was applied; it must do
    nothing for a job that is not its queue's.
    """
    revokers.register(kind, revoke)
