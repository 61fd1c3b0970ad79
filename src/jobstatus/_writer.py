"""How a Status's changes reach the store: at once, throttled, or from an event loop.

A writer holds the changes not yet written (the "held" change). A throttled
change is held when the last write was less than ``throttle_interval`` ago and
goes out with the next write; a forced change or a lifecycle transition writes
everything held at once. So nothing held is ever lost: the job's final
transition carries it.

Inside a job, every write that adds to a number carries the writer's id and
the next sequence number. When such a write fails, the store may have applied
it anyway (a reply that timed out), so it is sent again as it was, same
sequence, before anything newer: the store applies it only if it has not
already, and increments count once.

``Writer`` writes in the caller's thread. ``AsyncWriter``, used by async jobs,
hands writes to one task on the event loop that drains them in order, so job
code never blocks the loop and may still call the plain (sync) methods.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from typing import Any

from ._config import JobOptions
from ._errors import StoreError
from ._record import Change, Record, apply_change, utc_now_iso
from .stores.base import Store

logger = logging.getLogger("jobstatus")

WARN_EVERY = 30.0  # seconds between two warnings about a failing store, per process


class _StoreErrorLog:
    """Logs store failures inside jobs at most once per WARN_EVERY seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = -WARN_EVERY
        self._suppressed = 0

    def reset(self) -> None:
        """Forget past warnings, so the next failure warns at once (for tests)."""
        with self._lock:
            self._last, self._suppressed = -WARN_EVERY, 0

    def warn(self, store: Store, job_id: str, exc: StoreError) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < WARN_EVERY:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        more = f" ({suppressed} more failures since the last warning)" if suppressed else ""
        logger.warning(
            "jobstatus could not write the status of job %r to %s; the job goes on and "
            "the change is kept for the next write: %s%s",
            job_id,
            store.describe(),
            exc,
            more,
        )


store_error_log = _StoreErrorLog()


def progress_of(record: Record) -> float:
    """The record's progress as a number (0 when absent or not a number)."""
    value = record.get("progress")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class Writer:
    """Writes one job's changes to the store, throttled or at once.

    Args:
        store: where to write.
        job_id: whose record.
        record: the Status's local view, updated with every change.
        options: expiry, throttling and the error policy.
        in_job: True inside the running job: throttling and ``on_store_error``
            apply. False for a snapshot: writes go at once and errors raise.
    """

    def __init__(
        self, store: Store, job_id: str, record: Record, options: JobOptions, *, in_job: bool
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.record = record
        self.options = options
        self.in_job = in_job
        self.interval = options.throttle_interval if in_job else 0.0
        self.lock = threading.Lock()
        self._held = self._empty()
        # Public to Progress.increment, the hot path, which reads them under ``lock``.
        self.held_progress: float = 0
        self.due_at = -float("inf")  # monotonic time from which a throttled change is written
        self.written_at = time.monotonic()  # of the last successful write, for heartbeats
        self._beat = False  # the next flush writes even when nothing is held
        self._id = uuid.uuid4().hex[:16] if in_job else None  # names this writer's writes
        self._sequence = 0
        self._pid = os.getpid()
        self._unsure: Change | None = None  # a failed write with increments, to send again

    def _empty(self) -> Change:
        return Change(ttl=self.options.expires_in, finished_ttl=self.options.finished_ttl)

    def add_progress(self, by: float) -> None:
        """Add ``by`` to progress; throttled. ``Progress.increment`` inlines this."""
        with self.lock:
            self.held_progress += by
            if time.monotonic() < self.due_at:
                return
            self._flush_locked()

    def submit(self, change: Change, *, force: bool) -> None:
        """Apply ``change`` to the local view and write it (with all held) unless throttled."""
        with self.lock:
            if "progress" in change.set:
                self.held_progress = 0  # a later absolute value replaces held increments
            self.record.update(apply_change(self.record, change))
            self._held.merge(change)
            if not force and time.monotonic() < self.due_at:
                return
            self._flush_locked()

    def flush(self) -> None:
        """Write everything held now."""
        with self.lock:
            self._flush_locked()

    def beat(self) -> None:
        """Write now even with nothing held: ``updated_at`` tells readers the job lives."""
        with self.lock:
            self._beat = True
            self._flush_locked()

    def _take_locked(self) -> Change:
        """The held change, with the held progress folded in and ``updated_at`` stamped."""
        change, self._held = self._held, self._empty()
        if self.held_progress:
            change.merge(Change(incr={"progress": self.held_progress}))
            self.record["progress"] = progress_of(self.record) + self.held_progress
            self.held_progress = 0
        change.set["updated_at"] = stamp = utc_now_iso()
        self.record["updated_at"] = stamp
        change.ttl, change.finished_ttl = self.options.expires_in, self.options.finished_ttl
        if change.incr and self._id is not None:
            change.origin = self._next_origin()
        return change

    def _next_origin(self) -> tuple[str, int]:
        if self._pid != os.getpid():
            # A forked child writing through its parent's Status: its writes are
            # its own, or the store would take them for copies of the parent's.
            self._pid, self._id, self._sequence = os.getpid(), uuid.uuid4().hex[:16], 0
        self._sequence += 1
        return (str(self._id), self._sequence)

    def _next_locked(self) -> Change | None:
        """What to write next: a failed write with increments first, as it was."""
        if self._unsure is not None:
            change, self._unsure = self._unsure, None
            return change
        if not self._held and not self.held_progress and not self._beat:
            return None  # nothing to say: with includes=set() a transition writes nothing
        self._beat = False
        return self._take_locked()

    def _flush_locked(self) -> None:
        while (change := self._next_locked()) is not None:
            try:
                self.store.write(self.job_id, change)
            except StoreError as exc:
                self._failed(change, exc)
                return
            self.written_at = time.monotonic()
            self.due_at = self.written_at + self.interval

    def _failed(self, change: Change, exc: StoreError) -> None:
        """Keep the change for the next write, then warn or raise as configured.

        A change with increments is kept apart, to be sent again unchanged (its
        origin lets the store drop it if it was applied after all); the others
        fold into what is held.
        """
        if not self.in_job:
            raise exc
        if change.origin is not None:
            self._unsure = change
        else:
            change.merge(self._held)
            self._held = change
        if self.options.on_store_error == "raise":
            raise exc
        store_error_log.warn(self.store, self.job_id, exc)

    async def aflush(self) -> None:
        """Async twin of :meth:`flush`."""
        await asyncio.to_thread(self.flush)

    async def asubmit(self, change: Change, *, force: bool) -> None:
        """Async twin of :meth:`submit` (the write happens off the event loop)."""
        await asyncio.to_thread(self.submit, change, force=force)


class AsyncWriter(Writer):
    """A writer for async jobs: writes run as one task on the loop, in order.

    The sync methods (``increment()``, ``status["k"] = v``) only queue work, so
    they never block the event loop; ``aflush()`` waits until it is written.
    """

    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop = loop
        self._due = False
        self._task: asyncio.Task[None] | None = None

    def _flush_locked(self) -> None:
        self._due = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._ensure_task()
        else:
            self.loop.call_soon_threadsafe(self._ensure_task)

    def _ensure_task(self) -> None:
        if self._task is None:
            self._task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            with self.lock:
                if not self._due:
                    self._task = None
                    return
                # A re-sent write leaves the flush due: what is held goes next.
                self._due = self._unsure is not None
                change = self._next_locked()
                if change is None:
                    continue
            try:
                await self.store.awrite(self.job_id, change)
            except StoreError as exc:
                with self.lock:
                    self._task = None
                    self._failed(change, exc)
                return
            self.written_at = time.monotonic()
            self.due_at = self.written_at + self.interval

    async def aflush(self) -> None:
        with self.lock:
            self._due = True
        self._ensure_task()
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    async def asubmit(self, change: Change, *, force: bool) -> None:
        self.submit(change, force=force)
        if force or not self.interval:
            await self.aflush()
