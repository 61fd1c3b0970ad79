"""How a Status's changes reach the store: at once, throttled, or from an event loop.

A writer holds the changes not yet written (the "held" change). A throttled
change is held when the last write was less than ``throttle_interval`` ago and
goes out with the next write; a forced change or a lifecycle transition writes
everything held at once. So nothing held is ever lost: the job's final
transition carries it.

``increment()`` by 1, the throttled hot path, reads no clock: each tick takes the
next number of ``Writer.ticks`` and compares it with ``check_at``, a countdown
set from the observed rate (as tqdm's ``miniters``) to about half the ticks due
before the next write may go. The tick that reaches it reads the clock and
writes, or counts down again; the heartbeat thread's look ends a countdown the
clock outran, and a cancel learnt ends it at once.

Inside a job, every write that adds to a number carries the writer's id and
the next sequence number. When such a write fails, the store may have applied
it anyway (a reply that timed out), so it is sent again as it was, same
sequence, before anything newer: the store applies it only if it has not
already, and increments count once.

A change the store refuses for good (:class:`WriteRefused`: a value too large,
a sum that overflows) is never sent again as it was. It is split instead: the
job's own keys are written one by one, then the lifecycle keys together (then
each alone, the status and its timestamps last). Each refused piece is
dropped and reported per ``on_store_error``; what the store takes is written,
and above all the final transition, so later writes are never blocked.

When a running job's write answers that it created the record, though the job
had written before, the record vanished (a memcached restart, an eviction,
an expiry): the writer follows with one write of what the job knows.

``Writer`` writes in the caller's thread. ``AsyncWriter``, used by async jobs,
hands writes to one task on the event loop that drains them in order, so job
code never blocks the loop and may still call the plain (sync) methods.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
import uuid
from typing import Any

from ._config import JobOptions
from ._errors import Cancelled, StoreError, WriteRefused
from ._record import (
    RESERVED_KEYS,
    TRANSITION_ADDS,
    TRANSITION_SETS,
    WRITES_KEY,
    Change,
    Record,
    add,
    apply_change,
    check_fields,
    utc_now_iso,
)
from .stores.base import Store, Written, in_thread

logger = logging.getLogger("jobstatus")

WARN_EVERY = 30.0  # seconds between two warnings about a failing store, per process
# What a restore after a vanished record leaves out: the stores' bookkeeping,
# and attempts, which a job in a worker counts from 0 though the record may not.
NOT_RESTORED = frozenset({WRITES_KEY, "attempts"})


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

    def warn(self, store: Store, job_id: str, exc: StoreError, dropped: str = "") -> None:
        """Log a failed write (``dropped`` names the keys refused for good), rate-limited."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < WARN_EVERY:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        more = f" ({suppressed} more failures since the last warning)" if suppressed else ""
        if dropped:
            what = f"the store refused {dropped} for good, so it was dropped; the job goes on"
        else:
            what = "the job goes on and the change is kept for the next write"
        logger.warning(
            "jobstatus could not write the status of job %r to %s; %s: %s%s",
            job_id,
            store.describe(),
            what,
            exc,
            more,
        )


store_error_log = _StoreErrorLog()


def progress_of(record: Record) -> float:
    """The record's progress as a number (0 when absent or not a number)."""
    value = record.get("progress")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def split_refused(change: Change) -> list[Change] | None:
    """Smaller changes to write instead of one the store refused, or None when it is one piece.

    First each of the job's own keys alone, then the lifecycle keys together. A
    lifecycle part refused on its own splits into each optional key alone
    (``exception``, ``serialized_job``), then the transition, then each
    increment alone (one that overflows is refused after the transition landed).
    """
    keys = change.written_keys()
    own = [key for key in keys if key not in RESERVED_KEYS]
    reserved = [key for key in keys if key in RESERVED_KEYS]
    if own:
        pieces = [change.subset([key]) for key in own]
        pieces += [change.subset(reserved)] if reserved else []
    else:
        transition = _transition(change)
        optional = [key for key in change.set if key not in TRANSITION_SETS]
        adds = [key for key in change.incr if key not in TRANSITION_ADDS]
        pieces = [change.subset([key], adds=False) for key in optional]
        pieces += [transition] if transition else []
        pieces += [change.subset([key], sets=False) for key in adds]
    return pieces if len(pieces) > 1 else None  # one piece: the change itself


def _transition(change: Change) -> Change:
    transition = change.subset(TRANSITION_SETS, adds=False)
    transition.incr = {k: v for k, v in change.incr.items() if k in TRANSITION_ADDS}
    return transition


def is_transition(change: Change) -> bool:
    """Whether ``change`` holds only what a split keeps together (see TRANSITION_SETS)."""
    return all(key in TRANSITION_SETS for key in change.set) and all(
        key in TRANSITION_ADDS for key in change.incr
    )


def restorable(record: Record) -> Record:
    """What a job knows of its record and may write back: its valid keys, bookkeeping left out."""
    kept: Record = {}
    for key, value in record.items():
        if key in NOT_RESTORED:
            continue
        try:
            kept.update(check_fields({key: value}))
        except (TypeError, ValueError):
            continue  # a sum that overflowed in the job's own view: not the store's
    return kept


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
        #: The hot path of ``increment()`` (by 1): each tick takes the next number,
        #: atomically and with no lock, and reads no clock until its number reaches
        #: ``check_at`` (a countdown recomputed from the observed rate, as tqdm's
        #: ``miniters``; the heartbeat thread zeroes it once ``due_at`` passed).
        self.ticks = itertools.count()
        self.check_at = 0
        self._peeks = 0  # numbers this writer took itself, to read the count
        self._ticks_taken = 0  # ticks already folded into held_progress
        self._checked = (0, time.monotonic())  # ticks counted and time of the last check
        self.written_at = time.monotonic()  # of the last successful write, for heartbeats
        self._beat = False  # the next flush writes even when nothing is held
        self._id = uuid.uuid4().hex[:16] if in_job else None  # names this writer's writes
        self._sequence = 0
        self._pid = os.getpid()
        self._unsure: Change | None = None  # a failed write with increments, to send again
        # Written before anything held: the pieces of a refused change, a restore.
        self._pending: list[Change] = []
        self._restore: Change | None = None  # the restore queued last, never restored itself
        self._wrote = False  # a write of this job reached the store
        self._refusal: WriteRefused | None = None  # to raise once the flush is over
        #: What the store answered to the last guarded write (a job's start): when the
        #: record became queued (``Written.queued_at``), or None. The job's wait metric.
        self.queued_at: str | None = None
        #: The cancel request this job learnt of (from a write's reply or the store's
        #: push), or None. Progress and status calls test it: no I/O on the hot path.
        self.cancel: Record | None = None

    def learn_cancel(self, request: Record) -> None:
        """Note a cancel request for this job: its next progress or status call raises."""
        if self.in_job and self.cancel is None:
            self.cancel = request
            self.record["cancel"] = request
            self.check_at = -1  # the next tick goes to ticked(), which raises

    def cancelled(self) -> Cancelled:
        """The exception to raise in the job now that its cancel was requested."""
        reason = self.cancel.get("reason") if self.cancel is not None else None
        return Cancelled(self.job_id, reason if isinstance(reason, str) else None)

    def write_guarded(self, change: Change) -> bool:
        """Write what is held, then ``change`` alone; whether its guard held.

        A store failure fails open: the change loses its guard and goes the way of
        any failed write (held for the next write, or raised per
        ``on_store_error``), and this answers True.
        """
        with self.lock:
            self._flush_locked()
            self._stamp(change)
            try:
                written = self.store.write(self.job_id, change)
            except Exception as exc:  # noqa: BLE001 - sorted by _refused_or_failed
                return self._guarded_failed(change, exc)
            return self._guarded_written(change, written)

    async def awrite_guarded(self, change: Change) -> bool:
        """Async twin of :meth:`write_guarded` (the write runs on the event loop)."""
        # Not a copy of write_guarded: the lock is a thread's, never held across an
        # await, so what is held is flushed first and the lock taken around each step.
        await self.aflush()
        with self.lock:
            self._stamp(change)
        try:
            written = await self.store.awrite(self.job_id, change)
        except Exception as exc:  # noqa: BLE001
            with self.lock:
                return self._guarded_failed(change, exc)
        with self.lock:
            return self._guarded_written(change, written)

    def _stamp(self, change: Change) -> None:
        change.set["updated_at"] = utc_now_iso()
        change.ttl, change.finished_ttl = self.options.expires_in, self.options.finished_ttl
        if change.incr and self._id is not None:
            change.origin = self._next_origin()

    def _guarded_written(self, change: Change, written: Written | None) -> bool:
        applied = written is None or written.applied
        self.queued_at = written.queued_at if written is not None else None
        if applied:
            self.record.update(apply_change(self.record, change))
        self._written(change, written)
        return applied

    def _guarded_failed(self, change: Change, exc: Exception) -> bool:
        change.guard = None
        self.record.update(apply_change(self.record, change))
        if not self._refused_or_failed(change, exc):
            self._flush_locked()  # the refused change's pieces
        return True

    def _empty(self) -> Change:
        return Change(ttl=self.options.expires_in, finished_ttl=self.options.finished_ttl)

    def add_progress(self, by: float) -> None:
        """Add ``by`` to progress; throttled. (``Progress.increment`` by 1 counts in
        ``ticks`` instead, and calls :meth:`ticked` once its countdown ran out.)"""
        with self.lock:
            # Through add(): held int increments past a float's range plus a float
            # would raise OverflowError into the job; an infinity is refused by the
            # store instead, then reported and dropped like any refused sum.
            self.held_progress = add(self.held_progress, by)
            if time.monotonic() < self.due_at:
                return
            self._flush_locked()

    def _count_ticks_locked(self) -> tuple[int, int]:
        """Fold the ticks counted since the last look into held_progress; the number
        now and how many ticks were counted in all.

        Every number ``ticks`` handed out before this one went to a tick or to a
        look of this method, so the count is exact however threads interleave.
        """
        number = next(self.ticks)
        ticks = number - self._peeks - self._ticks_taken
        self._peeks += 1
        if ticks:
            self.held_progress += ticks
            self._ticks_taken += ticks
        return number, self._ticks_taken

    def held(self) -> float:
        """The progress added and not yet written (ticks counted in)."""
        with self.lock:
            self._count_ticks_locked()
            return self.held_progress

    def ticked(self) -> None:
        """A tick reached ``check_at``: write when due, else count down again."""
        if self.cancel is not None:
            with self.lock:
                self._peeks += 1  # the raising tick's number: it adds nothing
            raise self.cancelled()
        with self.lock:
            number, counted = self._count_ticks_locked()
            now = time.monotonic()
            try:
                if now >= self.due_at:
                    self._flush_locked()
            finally:
                if self.cancel is None:  # else check_at stays -1: every tick raises
                    self._count_down_locked(number, counted, now)

    def _count_down_locked(self, number: int, counted: int, now: float) -> None:
        """Set ``check_at`` to about the tick the observed rate reaches ``due_at`` by.

        A half of the estimate, so a rate that falls by half still writes on time;
        one that falls further writes at the heartbeat thread's next look.
        """
        last_counted, last_at = self._checked
        self._checked = (counted, now)
        remaining = self.due_at - now
        if remaining <= 0 or now <= last_at or not self.interval:
            self.check_at = number + 1
            return
        rate = (counted - last_counted) / (now - last_at)  # ticks per second
        self.check_at = number + 1 + int(rate * remaining / 2)

    def wake(self, now: float) -> None:
        """For the heartbeat thread: once ``due_at`` passed, the next tick reads the clock."""
        if now >= self.due_at and self.check_at > 0:
            self.check_at = 0

    def submit(self, change: Change, *, force: bool) -> None:
        """Apply ``change`` to the local view and write it (with all held) unless throttled."""
        with self.lock:
            if "progress" in change.set:
                self._count_ticks_locked()
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
        """The held change, with the held progress (ticks counted in by the caller,
        ``_next_locked``) folded in and ``updated_at`` stamped."""
        change, self._held = self._held, self._empty()
        if self.held_progress:
            change.merge(Change(incr={"progress": self.held_progress}))
            self.record["progress"] = add(progress_of(self.record), self.held_progress)
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
        if self._pending:
            return self._pending.pop(0)
        self._count_ticks_locked()
        if not self._held and not self.held_progress and not self._beat:
            return None  # nothing to say: with includes=set() a transition writes nothing
        self._beat = False
        return self._take_locked()

    def _flush_locked(self) -> None:
        while (change := self._next_locked()) is not None:
            try:
                written = self.store.write(self.job_id, change)
            except Exception as exc:  # noqa: BLE001 - sorted by _refused_or_failed
                if self._refused_or_failed(change, exc):
                    return
                continue
            self._written(change, written)
        self._raise_refusal()

    def _refused_or_failed(self, change: Change, exc: Exception) -> bool:
        """Deal with a write that raised; True when the flush must stop (the change is kept)."""
        if not isinstance(exc, StoreError):
            # A store of one's own that raised something else: what Python raises for
            # data it cannot encode is a refusal of that data, anything else a failure.
            kind = (
                WriteRefused
                if isinstance(exc, (ValueError, TypeError, OverflowError))
                else StoreError
            )
            wrapped = kind(f"{self.store.describe()} raised {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        if isinstance(exc, WriteRefused) and self._refused(change, exc):
            return False
        if isinstance(exc, WriteRefused):
            change.origin = None  # refused, so not applied: the next take numbers it anew
        self._failed(change, exc)
        return True

    def _refused(self, change: Change, exc: WriteRefused) -> bool:
        """Split or drop a change the store refused for good; False when it must be kept.

        The transition alone (status, timestamps, absolute progress) is never
        dropped: kept, it goes out with the next write, which the store may take
        (a full disk with room again).
        """
        if not self.in_job:
            raise exc
        pieces = split_refused(change)
        if pieces is not None:
            for piece in pieces:
                if piece.incr and self._id is not None:
                    piece.origin = self._next_origin()
            self._pending[:0] = pieces
            return True
        if is_transition(change):
            return False
        dropped = ", ".join(map(repr, change.written_keys()))
        refusal = WriteRefused(f"{dropped} of job {self.job_id!r} was dropped: {exc}")
        refusal.__cause__ = exc
        if self.options.on_store_error == "raise":
            self._refusal = self._refusal or refusal
        else:
            store_error_log.warn(self.store, self.job_id, exc, dropped)
        return True

    def _raise_refusal(self) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            raise refusal

    def _written(self, change: Change, written: Written | None) -> None:
        """After a write: time it, learn of a cancel request, restore a record found vanished."""
        self.written_at = time.monotonic()
        self.due_at = self.written_at + self.interval
        if written is not None and written.cancel is not None:
            self.learn_cancel(written.cancel)
        created = written is not None and written.created
        if created and self._wrote and self.in_job and change is not self._restore:
            # Queued last, after the pieces still to go, whose amounts the job's
            # view already counts: the restore's absolute values come after them.
            self._restore = Change(
                set=restorable(self.record),
                ttl=self.options.expires_in,
                finished_ttl=self.options.finished_ttl,
            )
            self._pending.append(self._restore)
        self._wrote = True

    def _failed(self, change: Change, exc: StoreError) -> None:
        """Keep the change for the next write, then warn or raise as configured.

        A change with increments is kept apart, to be sent again unchanged (its
        origin lets the store drop it if it was applied after all); the others
        go back before what is pending, or fold into what is held.
        """
        if not self.in_job:
            raise exc
        if change.origin is not None:
            self._unsure = change
        elif self._pending:
            self._pending.insert(0, change)
        else:
            change.merge(self._held)
            self._held = change
        if self.options.on_store_error == "raise":
            raise exc
        store_error_log.warn(self.store, self.job_id, exc)

    # A Writer's async twins write off the event loop, in a worker thread.
    aflush = in_thread(flush)
    asubmit = in_thread(submit)


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
                    self._raise_refusal()
                    return
                # A re-sent write or a pending piece leaves the flush due: what is held goes next.
                self._due = self._unsure is not None or bool(self._pending)
                change = self._next_locked()
                if change is None:
                    continue
            try:
                written = await self.store.awrite(self.job_id, change)
            except Exception as exc:  # noqa: BLE001 - sorted by _refused_or_failed
                with self.lock:
                    task, self._task = self._task, None  # _failed may raise: no task then
                    if self._refused_or_failed(change, exc):
                        return
                    self._task, self._due = task, True  # split or dropped: go on
                continue
            with self.lock:
                self._written(change, written)
                self._due = self._due or bool(self._pending)

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
