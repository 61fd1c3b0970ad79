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

The request's functions (``cancel``, ``cancel_job`` and their async twins) are
written once, in ``_cancel_async.py``; scripts/unasync.py writes the sync ones.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._cancel_async import acancel, acancel_job
from ._cancel_sync import cancel, cancel_job
from ._record import Record
from ._revokers import Revoker, register_revoker, revokers
from .stores.base import CancelPush, Store

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
