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
beats ``heartbeat_interval`` after its last write, not up to a ``TICK`` later,
so on a store that does not push, the reply to that beat delivers a cancel
request within ``heartbeat_interval`` (SPEC section 9). Each look is one pass
over the running jobs, which both beats the due ones and finds the next due
time: no more work per job than a fixed tick, and no wake-ups while none is due.
"""

from __future__ import annotations

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


class Heartbeat:
    """The running jobs of this process, and the thread that keeps them alive."""

    def __init__(self) -> None:
        self._writers: weakref.WeakSet[Writer] = weakref.WeakSet()
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
                self._writers = weakref.WeakSet()
                self._woken = threading.Event()
            self._writers.add(writer)
            self._woken.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobstatus-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, writer: Writer) -> None:
        """Stop beating for ``writer``'s job."""
        with self._lock:
            self._writers.discard(writer)

    def reset(self) -> None:
        """Forget every running job (for tests: each starts with none beating)."""
        with self._lock:
            self._writers = weakref.WeakSet()

    def beat_due(self) -> int:
        """Flush every idle job whose interval has passed; return how many."""
        return self._look()[0]

    def _look(self) -> tuple[int, float]:
        """Beat the due jobs; how many, and the monotonic time the next beat is due."""
        with self._lock:
            writers = list(self._writers)
        now = time.monotonic()
        beats = 0
        next_due = now + TICK
        for writer in writers:
            writer.wake(now)  # a tick countdown the clock outran: the next tick looks
            interval = writer.options.heartbeat_interval
            due = writer.written_at + interval
            if now >= due:
                try:
                    writer.beat()
                    beats += 1
                except Exception:  # on_store_error="raise" must not kill the thread
                    logger.debug("heartbeat of job %r failed", writer.job_id, exc_info=True)
                due = writer.written_at + interval
                if due <= now:
                    continue  # the beat failed: tried again a TICK later, not at once
            next_due = min(next_due, due)
        return beats, next_due

    def _run(self) -> None:
        while True:
            _, next_due = self._look()
            self._woken.wait(max(NAP, next_due - time.monotonic()))
            self._woken.clear()


heartbeat = Heartbeat()
