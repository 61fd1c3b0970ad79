"""``Status``'s methods that do I/O, written once for both sides.

``_status_async.py`` is the source and scripts/unasync.py generates
``_status_sync.py`` from it; :class:`jobstatus._status.Status` is made of both
mixins. Reading a snapshot, and what a write changes, are Status's own, in
``_status.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ._cancel import acancel_job
from ._watch import Seen, remaining
from .stores.base import acall_store

if TYPE_CHECKING:
    from ._record import Change, Record
    from ._status import Status
    from ._writer import Writer
    from .stores.base import Store


class AsyncStatusMethods:
    """The async I/O of a :class:`~jobstatus._status.Status`: ``aupdate`` ... ``until_finished``."""

    # sync: """The I/O of a :class:`~jobstatus._status.Status`: ``update`` ... ``wait``."""

    __slots__ = ()  # Status has slots: a Batch holds thousands of them

    if TYPE_CHECKING:  # what the methods use of Status
        _job_id: str
        _store: Store

        def _writer_for_write(self) -> Writer: ...
        def _change(self, fields: Mapping[str, Any]) -> Change: ...
        def _snapshot(self, record: Record | None) -> Status: ...

    async def aupdate(
        self, fields: Mapping[str, Any] | None = None, /, *, force: bool = False, **more: Any
    ) -> None:
        """Async twin of :meth:`update`."""
        # sync: """Set several keys in one atomic write; throttled inside a job unless ``force``.
        # sync:
        # sync: ``progress`` and ``total`` move ``self.progress`` too.
        # sync:
        # sync: Raises:
        # sync:     TypeError, ValueError: a key or value is not valid; nothing is written.
        # sync:     StoreError: the store failed (from outside a job, or with
        # sync:         ``on_store_error="raise"``).
        # sync: """
        change = self._change({**(fields or {}), **more})
        await self._writer_for_write().asubmit(change, force=force)

    async def aflush(self) -> None:
        """Async twin of :meth:`flush`."""
        # sync: """Write any held (throttled) changes now."""
        await self._writer_for_write().aflush()

    async def acancel(self, reason: str | None = None) -> bool:
        """Async twin of :meth:`cancel`."""
        # sync: """Request this job's cancel: True for a queued or working job, False otherwise.
        # sync:
        # sync: Same as ``jobstatus.cancel(self.job_id, reason)``; see there.
        # sync: """
        return await acancel_job(self._store, self._job_id, reason)

    async def adelete(self) -> None:
        """Async twin of :meth:`delete`."""
        # sync: """Remove the record from the store."""
        await acall_store(self._store.adelete, self._job_id)

    async def arefresh(self) -> Status:
        """Async twin of :meth:`refresh`."""
        # sync: """A new snapshot read from the store; this one is unchanged."""
        return self._snapshot(await acall_store(self._store.aread, self._job_id))

    async def awatch(self, timeout: float | None = None) -> AsyncIterator[Status]:
        """Async twin of :meth:`watch`."""
        # sync: """Yield the current snapshot, then every change, ending at the finished one.
        # sync:
        # sync: Pushed by the store where it can (Redis, PostgreSQL); polls with
        # sync: backoff elsewhere.
        # sync:
        # sync: Raises:
        # sync:     TimeoutError: ``timeout`` seconds passed before the job finished.
        # sync: """
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self._store.asubscribe(self._job_id) as subscription:
            snapshot = await self.arefresh()
            yield snapshot
            seen = Seen(snapshot)
            while not snapshot.is_finished:
                pushed = await subscription.wait(remaining(deadline, self._job_id))
                snapshots = (
                    [await self.arefresh()]
                    if pushed is None
                    else [self._snapshot(record) for record in pushed]
                )
                for snapshot in seen.new(snapshots):
                    subscription.changed()
                    yield snapshot
                    if snapshot.is_finished:
                        return

    async def until_finished(self, timeout: float | None = None) -> Status:
        """Async twin of :meth:`wait` (``await`` is a keyword, hence the name)."""
        # sync: """Block until the job is finished and return that snapshot.
        # sync:
        # sync: Raises:
        # sync:     TimeoutError: ``timeout`` seconds passed first.
        # sync: """
        last = None
        async for snapshot in self.awatch(timeout):
            last = snapshot
        assert last is not None  # the first snapshot comes before any end
        return last
