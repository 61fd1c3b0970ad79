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

A queued job need not wait for a worker to pick it up and refuse it: every
request that was applied is handed, after it is recorded, to the revokers the
queue integrations registered (:mod:`jobstatus._revokers`; ``register_revoker``
is re-exported here).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _lifecycle as lifecycle
from ._config import settings, store_or_default
from ._record import Record, check_reason, job_id_of
from ._revokers import Revoker, arevoke_recorded, register_revoker, revoke_recorded, revokers
from .stores.base import CancelPush, Store, acall_store, call_store, listing_of

if TYPE_CHECKING:
    from ._writer import Writer

logger = logging.getLogger("jobstatus")

__all__ = [
    "Delivery",
    "Revoker",
    "acancel",
    "acancel_job",
    "cancel",
    "cancel_job",
    "delivery",
    "register_revoker",
    "revokers",
]


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
        revoke_recorded(store, job_id)
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
        await arevoke_recorded(store, job_id)
    for child in await _achildren(store, job_id):
        await acancel_job(store, child, reason)
    return True


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
