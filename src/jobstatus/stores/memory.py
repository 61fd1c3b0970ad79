"""``memory://``: records in this process's memory, for tests and single-process apps.

Every ``memory://`` URL in a process is the same store (``MemoryStore.shared()``);
``MemoryStore()`` makes a private one, handy in your own tests. It pushes
changes to waiting readers and can list recent jobs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from .._record import STATES, Change, Record, parse_iso, public
from .._rollup import write_through
from .base import (
    AsyncSubscription,
    CancelPush,
    Clock,
    Listing,
    Push,
    Store,
    Subscription,
    Written,
    at_once,
)


class MemoryStore(Listing, Push, CancelPush, Store):
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
        self._cancel_listeners: list[Callable[[str, Record], None]] = []

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

            def update(
                key: str, compute: Callable[[Record | None], Record | None]
            ) -> tuple[Record | None, Record | None]:
                old = self._live(key, now)
                new = compute(old)
                if new is not None:
                    self._records[key] = (new, now + change.ttl_for(new))
                return old, new

            written = write_through(update, job_id, change)
            if written.applied:
                self._version += 1
                self._changed.notify_all()
            return written

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
        return self.find(status=status, limit=limit, before=before)

    def find(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        rows = []
        for job_id, record in self._live_records():
            updated = parse_iso(record.get("updated_at")) or 0.0
            if status is not None and record.get("status") != status:
                continue
            if before is not None and updated >= before:
                continue
            if name is not None and record.get("name") != name:
                continue
            if id_prefix is not None and not job_id.startswith(id_prefix):
                continue
            rows.append((updated, job_id, public(dict(record))))
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [(job_id, record) for _, job_id, record in rows[:limit]]

    def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for _, record in self._live_records():
            status = record.get("status")
            if status in counts:
                counts[status] += 1
        return counts

    def count_stale(self, updated_before: float) -> int:
        return sum(
            record.get("status") == "working"
            and (parse_iso(record.get("updated_at")) or 0.0) < updated_before
            for _, record in self._live_records()
        )

    def _live_records(self) -> list[tuple[str, Record]]:
        with self._lock:
            now = self._clock()
            return [
                (job_id, record)
                for job_id in list(self._records)
                if (record := self._live(job_id, now)) is not None
            ]

    def child_ids(self, parent: str) -> list[str]:
        with self._lock:
            now = self._clock()
            return sorted(
                job_id
                for job_id in list(self._records)
                if (record := self._live(job_id, now)) is not None
                and record.get("parent") == parent
            )

    def announce_cancel(self, job_id: str, request: Record) -> None:
        with self._lock:
            listeners = list(self._cancel_listeners)
        for deliver in listeners:
            deliver(job_id, request)

    def listen_for_cancels(self, deliver: Callable[[str, Record], None]) -> Callable[[], None]:
        with self._lock:
            self._cancel_listeners.append(deliver)

        def stop() -> None:
            with self._lock:
                if deliver in self._cancel_listeners:
                    self._cancel_listeners.remove(deliver)

        return stop

    def subscribe(self, job_id: str) -> Subscription:
        return _MemorySubscription(self)

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        return _AsyncMemorySubscription(self)

    # Nothing here blocks: the async twins run on the loop, not in a thread.
    awrite = at_once(write)
    aread = at_once(read)
    aread_many = at_once(read_many)
    adelete = at_once(delete)
    aclose = at_once(Store.close)


class _Versioned:
    """Where a subscription to a memory store starts: the store's version now."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        with store._lock:
            self._seen = store._version


class _MemorySubscription(_Versioned, Subscription):
    """Wakes on any write to the store (cheap in one process)."""

    def wait(self, timeout: float) -> list[Record] | None:
        store = self._store
        with store._changed:
            store._changed.wait_for(lambda: store._version != self._seen, timeout)
            self._seen = store._version
        return None


class _AsyncMemorySubscription(_Versioned, AsyncSubscription):
    """Checks the store's version every few milliseconds without blocking the loop.

    Unlike the sync one, it never waits on the store's condition: that would block
    the loop's thread, and a write from the loop itself could never wake it.
    """

    async def wait(self, timeout: float) -> list[Record] | None:
        deadline = time.monotonic() + timeout
        while self._store._version == self._seen and time.monotonic() < deadline:
            await asyncio.sleep(min(0.005, max(deadline - time.monotonic(), 0)))
        self._seen = self._store._version
        return None
