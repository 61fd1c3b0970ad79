"""Cancelling jobs: the request (``jobstatus.cancel``) and its delivery to running jobs.

A request is one guarded write: ``cancel: {"requested_at", "reason"}`` and a
``cancel_requested`` history entry, applied only while the job is queued or
working (so the answer, True or False, is the store's, atomically).

A running job learns of it without any I/O on its hot path: its writer keeps
the request in a local field, which every progress and status call tests. The
field is set by

- the reply to the job's next write or heartbeat (every store's write reports a
  pending request: :class:`jobstatus._record.Written`), and
- at once, where the store can push (:class:`jobstatus.stores.base.CancelPush`:
  Redis pub/sub, PostgreSQL LISTEN/NOTIFY, memory): one listener per store and
  process delivers each announced request to the running job it names.

A queued job need not wait for a worker to pick it up and refuse it: a queue
integration with a revoke or abort of its own registers a :data:`Revoker`
(:func:`register_revoker`, at import of its module or app setup), and every
request that was applied is handed to the registered revokers with the job's
record, after it is recorded. A revoker's errors are logged, never raised: the
request is recorded either way, and the worker's start hook still refuses the job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _lifecycle as lifecycle
from ._config import settings, store_or_default
from ._errors import StoreError
from ._record import Record, check_reason, job_id_of
from .stores.base import CancelPush, Store, acall_store, call_store, listing_of

if TYPE_CHECKING:
    from ._writer import Writer

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


def cancel(job_or_id: object, reason: str | None = None, *, store: object = None) -> bool:
    """Request that a job stop: True for a queued or working job, False otherwise.

    A queued job never runs its code; a running one raises
    :class:`jobstatus.Cancelled` at its next progress or status call, and is then
    recorded ``cancelled``. An unknown or finished job is left unchanged. A
    group's children are cancelled with it (where the store can list them).

    Args:
        job_or_id: an id, a queue's job object, or a Status.
        reason: why (at most 1,000 characters); recorded and raised with ``Cancelled``.
        store: the store (URL, Store or client); the configured one by default.

    Raises:
        TypeError, ValueError: a malformed id or reason (before any I/O).
        StoreError: the store failed.

    Example::

        if jobstatus.cancel(job_id, reason="the user clicked cancel"):
            print("it will stop at its next step")
    """
    job_id = job_id_of(job_or_id)
    checked = check_reason(reason)
    return cancel_job(store_or_default(store), job_id, checked)


async def acancel(job_or_id: object, reason: str | None = None, *, store: object = None) -> bool:
    """Async twin of :func:`cancel`."""
    job_id = job_id_of(job_or_id)
    checked = check_reason(reason)
    return await acancel_job(store_or_default(store), job_id, checked)


def cancel_job(store: Store, job_id: str, reason: str | None) -> bool:
    """Record the request on ``store``, announce it, hand it to the queues' revokers,
    and cancel a group's children."""
    change = lifecycle.cancel_requested(settings.options, check_reason(reason))
    written = call_store(store.write, job_id, change)
    if written is not None and not written.applied:
        return False
    pushing = CancelPush.of(store)
    if pushing is not None:
        call_store(pushing.announce_cancel, job_id, change.set["cancel"])
    if revokers:
        _revoke(job_id, lambda: call_store(store.read, job_id))
    for child in _children(store, job_id):
        cancel_job(store, child, reason)
    return True


async def acancel_job(store: Store, job_id: str, reason: str | None) -> bool:
    """Async twin of :func:`cancel_job`."""
    change = lifecycle.cancel_requested(settings.options, check_reason(reason))
    written = await acall_store(store.awrite, job_id, change)
    if written is not None and not written.applied:
        return False
    pushing = CancelPush.of(store)
    if pushing is not None:
        await acall_store(pushing.aannounce_cancel, job_id, change.set["cancel"])
    if revokers:
        try:
            record = await acall_store(store.aread, job_id)
        except StoreError as exc:
            logger.warning(_UNREAD, job_id, exc)
        else:
            if record is not None:
                # A revoker is a queue's client call, often blocking: off the loop.
                await asyncio.to_thread(revokers.revoke, job_id, record)
    for child in await _achildren(store, job_id):
        await acancel_job(store, child, reason)
    return True


_UNREAD = "job %r: its cancel is recorded, but not read back for its queue's revoke: %s"


def _revoke(job_id: str, read: Callable[[], Record | None]) -> None:
    """Hand the recorded request to the revokers; a store error here is only logged
    (the request is recorded: the worker's start hook still refuses the job)."""
    try:
        record = read()
    except StoreError as exc:
        logger.warning(_UNREAD, job_id, exc)
        return
    if record is not None:
        revokers.revoke(job_id, record)


def _children(store: Store, job_id: str) -> list[str]:
    try:
        listing = listing_of(store)
    except Exception:  # noqa: BLE001 - a store that cannot list has no children to find
        return []
    return call_store(listing.child_ids, job_id)


async def _achildren(store: Store, job_id: str) -> list[str]:
    try:
        listing = listing_of(store)
    except Exception:  # noqa: BLE001
        return []
    return await acall_store(listing.achild_ids, job_id)


class Delivery:
    """The running jobs of this process that can be told of a cancel request at once.

    One listener per store that pushes (started with the first job on it) hands
    each announced request to the job it names, if that job runs here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers: dict[tuple[int, str], Writer] = {}
        self._listening: dict[int, Callable[[], None]] = {}
        self._pid = os.getpid()

    def add(self, writer: Writer) -> None:
        """Deliver requests for ``writer``'s job until :meth:`remove`."""
        store = writer.store
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of its parent's listeners
                self._pid, self._listening, self._writers = os.getpid(), {}, {}
            self._writers[(id(store), writer.job_id)] = writer
            pushing = CancelPush.of(store)
            if pushing is None or id(store) in self._listening:
                return
            self._listening[id(store)] = pushing.listen_for_cancels(self._deliverer(store))

    def remove(self, writer: Writer) -> None:
        """Stop delivering requests for ``writer``'s job."""
        with self._lock:
            key = (id(writer.store), writer.job_id)
            if self._writers.get(key) is writer:
                del self._writers[key]

    def _deliverer(self, store: Store) -> Callable[[str, Record], None]:
        def deliver(job_id: str, request: Record) -> None:
            with self._lock:
                writer = self._writers.get((id(store), job_id))
            if writer is not None:
                writer.learn_cancel(request)

        return deliver

    def reset(self) -> None:
        """Stop every listener and forget every job (for tests and after a fork)."""
        with self._lock:
            stops = list(self._listening.values())
            self._listening.clear()
            self._writers.clear()
        for stop in stops:
            try:
                stop()
            except Exception:  # noqa: BLE001 - a listener on a store that went away
                logger.debug("stopping a cancel listener failed", exc_info=True)


delivery = Delivery()
