"""``Batch``'s reads, cancel and wait, written once for both sides.

``_batch_async.py`` is the source and scripts/unasync.py generates
``_batch_sync.py`` from it; :class:`jobstatus._batch.Batch` is made of both mixins.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ._cancel import acancel_job
from ._record import Record, check_reason
from .stores.base import POLL_FIRST, acall_store

if TYPE_CHECKING:
    from ._batch import Batch
    from .stores.base import Store


class AsyncBatchMethods:
    """The async I/O of a :class:`~jobstatus._batch.Batch`: ``arefresh`` ... ``until_finished``."""

    # sync: """The I/O of a :class:`~jobstatus._batch.Batch`: ``refresh``, ``cancel``, ``wait``."""

    if TYPE_CHECKING:  # what the methods use of Batch
        job_ids: list[str]
        _store: Store

        def _load(self, records: list[Record | None]) -> Batch: ...
        def _unfinished(self) -> list[str]: ...
        def _next_delay(self, deadline: float | None, delay: float) -> float: ...

    async def arefresh(self) -> Batch:
        """Async twin of :meth:`refresh`."""
        # sync: """Read every member again (in place) and return the batch."""
        return self._load(await acall_store(self._store.aread_many, self.job_ids))

    async def acancel(self, reason: str | None = None) -> int:
        """Async twin of :meth:`cancel`."""
        # sync: """Request the cancel of every member still queued or working; how many.
        # sync:
        # sync: Each member is one guarded write, so a member that finished meanwhile is
        # sync: left unchanged and not counted.
        # sync:
        # sync: Raises:
        # sync:     TypeError, ValueError: a malformed reason.
        # sync:     StoreError: the store failed.
        # sync: """
        checked = check_reason(reason)
        cancelled = 0
        for job_id in self._unfinished():
            cancelled += await acancel_job(self._store, job_id, checked)
        return cancelled

    async def until_finished(self, timeout: float | None = None) -> Batch:
        """Async twin of :meth:`wait`."""
        # sync: """Re-read with backoff until :attr:`is_finished`; return the batch.
        # sync:
        # sync: Raises:
        # sync:     TimeoutError: ``timeout`` seconds passed first.
        # sync: """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while not (batch := await self.arefresh()).is_finished:  # arefresh returns self
            delay = self._next_delay(deadline, delay)
            await asyncio.sleep(delay)
        return batch
