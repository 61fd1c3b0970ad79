"""Heartbeats: a running job that has been quiet for a while writes anyway.

A worker killed with SIGKILL or by the out-of-memory killer never reports its
end, so its job would read as ``working`` forever. Every write of a running job
stamps ``updated_at``; this module adds one daemon thread per process that,
while a job is idle, flushes its writer every ``heartbeat_interval`` seconds
(which also sends any held throttled change). Readers then call a working job
whose ``updated_at`` is older than ``stale_after`` stale.

Busy jobs cost nothing extra: their own writes are the heartbeat. Each look
also ends the tick countdown of a job whose throttle interval has passed
(``Writer.wake``), so a job whose rate fell still writes its progress.

The thread sleeps until the earliest beat is due, at most ``TICK``: a quiet job
beats ``heartbeat_interval`` after its last write, less a ``LEAD`` for the beat's
own write (a tenth of the interval at most), not up to a ``TICK`` later. So two
replies of a quiet job arrive at most ``heartbeat_interval`` apart, and on a
store that does not push, a cancel request reaches the job within
``heartbeat_interval`` (SPEC section 9): a beat measured from the last write's
end, with nothing for its own, would answer a request that landed just after
that write one write's time too late. The jobs wait in a heap by due time, so
a look beats the due ones without visiting the others, and many jobs whose beats
fall apart cost one look each per interval, not one pass over all of them; the
pass that ends tick countdowns runs once a ``TICK``, as before.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._writer import Writer

logger = logging.getLogger("jobstatus")

TICK = 1.0  # the most seconds between two looks at the running jobs
NAP = 0.005  # the fewest: a beat due sooner waits this long, so the loop never spins
LEAD = 0.1  # seconds a beat starts early, for its own write (at most a tenth of the interval)


class Heartbeat:
    """The running jobs of this process, and the thread that keeps them alive."""

    def __init__(self) -> None:
        self._writers: weakref.WeakSet[Writer] = weakref.WeakSet()
        #: (due, order, writer): when each running job beats next, earliest first. A
        #: job that wrote meanwhile is put back later; a removed one is dropped.
        self._due: list[tuple[float, int, weakref.ref[Writer]]] = []
        self._order = itertools.count()
        self._next_pass = 0.0  # monotonic time of the next pass that wakes countdowns
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._woken = threading.Event()  # a job joined: its first beat may be due sooner

    def add(self, writer: Writer) -> None:
        """Start beating for ``writer``'s job (no-op when its interval is 0)."""
        if not writer.options.heartbeat_interval or "status" not in writer.options.includes:
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked child has no thread yet
                self._pid, self._thread = os.getpid(), None
                self._writers, self._due = weakref.WeakSet(), []
                self._woken = threading.Event()
            self._writers.add(writer)
            self._schedule_locked(writer, writer.written_at + _quiet(writer))
            self._woken.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobstatus-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, writer: Writer) -> None:
        """Stop beating for ``writer``'s job (its place in the heap is dropped when due)."""
        with self._lock:
            self._writers.discard(writer)

    def reset(self) -> None:
        """Forget every running job (for tests: each starts with none beating)."""
        with self._lock:
            self._writers, self._due = weakref.WeakSet(), []

    def beat_due(self) -> int:
        """Flush every idle job whose interval has passed; return how many."""
        return self._look()[0]

    def _schedule_locked(self, writer: Writer, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._order), weakref.ref(writer)))

    def _next_due_locked(self, now: float) -> Writer | None:
        """The next running job whose beat may be due by ``now``, taken off the heap."""
        while self._due and self._due[0][0] <= now:
            writer = heapq.heappop(self._due)[2]()
            if writer is None or writer not in self._writers:
                continue  # finished, or collected
            due = writer.written_at + _quiet(writer)
            if due <= now:
                return writer
            self._schedule_locked(writer, due)  # it wrote meanwhile: its own writes beat
        return None

    def _look(self) -> tuple[int, float]:
        """Beat the due jobs; how many, and the monotonic time of the next look."""
        now = time.monotonic()
        with self._lock:
            writers = list(self._writers) if now >= self._next_pass else []
            if writers:
                self._next_pass = now + TICK
        for writer in writers:
            writer.wake(now)  # a tick countdown the clock outran: the next tick looks
        beats = 0
        while True:
            with self._lock:
                due_writer = self._next_due_locked(now)
            if due_writer is None:
                break
            try:
                due_writer.beat()
                beats += 1
            except Exception:  # on_store_error="raise" must not kill the thread
                logger.debug("heartbeat of job %r failed", due_writer.job_id, exc_info=True)
            due = due_writer.written_at + _quiet(due_writer)
            with self._lock:
                # A beat that failed is tried again a TICK later, not at once.
                self._schedule_locked(due_writer, due if due > now else now + TICK)
        with self._lock:
            first = self._due[0][0] if self._due else now + TICK
            return beats, min(first, self._next_pass if self._writers else now + TICK)

    def _run(self) -> None:
        while True:
            # Cleared before the look, so a job that joins during it or after it
            # wakes the wait below rather than waiting for the next TICK.
            self._woken.clear()
            _, next_look = self._look()
            self._woken.wait(max(NAP, next_look - time.monotonic()))


def _quiet(writer: Writer) -> float:
    """Seconds without a write after which ``writer``'s job beats: its interval, less
    ``LEAD`` (a tenth of the interval at most) for the beat's own write."""
    interval = writer.options.heartbeat_interval
    return interval - min(LEAD, interval / 10)


heartbeat = Heartbeat()
