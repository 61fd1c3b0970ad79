"""``memory://``: records in this process's memory, for tests and single-process apps.

Every ``memory://`` URL in a process is the same store (``MemoryStore.shared()``);
``MemoryStore()`` makes a private one, handy in your own tests. It pushes
changes to waiting readers and can list recent jobs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from .._record import Change, Record, apply_write, parse_iso, public
from .base import SKIPPED, AsyncSubscription, Clock, Listing, Push, Store, Subscription, Written


class MemoryStore(Listing, Push, Store):
    """A dict behind a lock. Merges are atomic within the process.

    Args:
        clock: returns the current time in epoch seconds; inject one in tests
            to expire records without waiting.
    """

    _shared: ClassVar[MemoryStore | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._records: dict[str, tuple[Record, float]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0

    @classmethod
    def shared(cls) -> MemoryStore:
        """The one store that every ``memory://`` URL in this process names."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStore:
        """``memory://`` gives the shared store; options make a private one."""
        return cls(**options) if options else cls.shared()

    def describe(self) -> str:
        return "memory://"

    def _live(self, job_id: str, now: float) -> Record | None:
        entry = self._records.get(job_id)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._records[job_id]
            return None
        return entry[0]

    def write(self, job_id: str, change: Change) -> Written:
        with self._lock:
            now = self._clock()
            before = self._live(job_id, now)
            record = apply_write(before, change)
            if record is None:
                return SKIPPED
            self._records[job_id] = (record, now + change.ttl_for(record))
            self._version += 1
            self._changed.notify_all()
        return Written(created=before is None)

    def read(self, job_id: str) -> Record | None:
        with self._lock:
            record = self._live(job_id, self._clock())
            return public(dict(record)) if record is not None else None

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        with self._lock:
            now = self._clock()
            records = [self._live(job_id, now) for job_id in job_ids]
        return [public(dict(r)) if r is not None else None for r in records]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._records.pop(job_id, None)
            self._version += 1
            self._changed.notify_all()

    def clear(self) -> None:
        """Remove every record (for tests)."""
        with self._lock:
            self._records.clear()

    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        with self._lock:
            now = self._clock()
            live = [
                (job_id, record)
                for job_id in list(self._records)
                if (record := self._live(job_id, now)) is not None
            ]
        rows = []
        for job_id, record in live:
            updated = parse_iso(record.get("updated_at")) or 0.0
            if status is not None and record.get("status") != status:
                continue
            if before is not None and updated >= before:
                continue
            rows.append((updated, job_id, public(dict(record))))
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [(job_id, record) for _, job_id, record in rows[:limit]]

    def subscribe(self, job_id: str) -> Subscription:
        return _MemorySubscription(self)

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        return _AsyncMemorySubscription(self)

    async def awrite(self, job_id: str, change: Change) -> Written:
        return self.write(job_id, change)

    async def aread(self, job_id: str) -> Record | None:
        return self.read(job_id)

    async def aread_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        return self.read_many(job_ids)

    async def adelete(self, job_id: str) -> None:
        self.delete(job_id)

    async def aclose(self) -> None:
        self.close()


class _MemorySubscription(Subscription):
    """Wakes on any write to the store (cheap in one process)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        with store._lock:
            self._seen = store._version

    def wait(self, timeout: float) -> list[Record] | None:
        store = self._store
        with store._changed:
            store._changed.wait_for(lambda: store._version != self._seen, timeout)
            self._seen = store._version
        return None


class _AsyncMemorySubscription(AsyncSubscription):
    """Checks the store's version every few milliseconds without blocking the loop."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._seen = store._version

    async def wait(self, timeout: float) -> list[Record] | None:
        deadline = time.monotonic() + timeout
        while self._store._version == self._seen and time.monotonic() < deadline:
            await asyncio.sleep(min(0.005, max(deadline - time.monotonic(), 0)))
        self._seen = self._store._version
        return None
