"""Checks the Redis and Redis Cluster test files share: many processes writing one
group's children, and a cancel pushed to a job running in another process.

Each check takes a ``make`` that builds a fresh store (in the calling process
and again in each forked child, which must not reuse the parent's sockets).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import jobstatus
from jobstatus import Job
from jobstatus._record import Change
from jobstatus.stores import Store, Written

fork = multiprocessing.get_context("fork")
BOUND = 60.0  # seconds a child process may take before the test fails

Make = Callable[[], Store]


def _write_children(make: Make, group: str, first: int, count: int, start_at: float) -> None:
    store = make()
    jobstatus.configure(store=store, throttle_interval=0, heartbeat_interval=0)
    time.sleep(max(0.0, start_at - time.time()))  # every process starts at once
    for n in range(first, first + count):
        job = Job(f"{group}-c{n}", parent=group)
        job.enqueued()
        job.started()
        job.finished(ValueError("odd") if n % 2 else None)
    store.close()


def children_from_processes_add_up(make: Make, processes: int = 8, each: int = 2_500) -> None:
    """``processes`` × ``each`` children of one group, written concurrently: exact counts."""
    store = make()
    jobstatus.configure(store=store)
    group = jobstatus.group(name="fan-out").job_id
    start_at = time.time() + 0.5
    workers = [
        fork.Process(target=_write_children, args=(make, group, p * each, each, start_at))
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(BOUND * 5)
        assert worker.exitcode == 0
    total = processes * each
    s = jobstatus.get(group)
    assert s["children"] == {
        "queued": 0,
        "working": 0,
        "completed": total // 2,
        "failed": total - total // 2,
        "cancelled": 0,
    }
    assert s.progress.current == total and s.progress.total == total
    assert s.status == "failed" and s.is_finished
    # On the way the group may have been completed for a moment (every child so far
    # done), then working again: only its ending is certain.
    assert s.history[-1]["status"] == "failed"


class _CountingWrites:
    """Counts the writes a store makes (in the job's process)."""

    def __init__(self, store: Store) -> None:
        self.writes = 0
        write = store.write

        def counted(job_id: str, change: Change) -> Written | None:
            self.writes += 1
            return write(job_id, change)

        store.write = counted  # type: ignore[method-assign]


def _run_until_cancelled(make: Make, job_id: str, reports: Any) -> None:
    store = make()
    counter = _CountingWrites(store)
    # No throttled write and no heartbeat for an hour: the job can only learn of the
    # request by the store's push.
    jobstatus.configure(store=store, throttle_interval=3600, heartbeat_interval=0)
    job = Job(job_id)
    job.started()
    status = job.status
    status.progress.increment()
    writes_before = counter.writes
    reports.put(("running", writes_before))
    deadline = time.monotonic() + BOUND
    outcome = "never cancelled"
    try:
        with job.activate():
            while time.monotonic() < deadline:
                status.progress.increment()
                time.sleep(0.001)
    except jobstatus.Cancelled as exc:
        outcome = f"cancelled: {exc.reason}"
    writes_meanwhile = counter.writes - writes_before
    job.finished(None)  # records cancelled: it learnt of the request
    reports.put((outcome, writes_meanwhile))
    store.close()


def cancel_reaches_another_process(make: Make) -> None:
    """A running job in another process raises Cancelled, learnt by push, not by a write."""
    store = make()
    jobstatus.configure(store=store)
    reports = fork.Queue()
    worker = fork.Process(target=_run_until_cancelled, args=(make, "far-job", reports))
    worker.start()
    try:
        state, _ = reports.get(timeout=BOUND)
        assert state == "running"
        assert jobstatus.get("far-job").is_working
        assert jobstatus.cancel("far-job", reason="from afar") is True
        outcome, writes_meanwhile = reports.get(timeout=BOUND)
    finally:
        worker.join(BOUND)
    assert worker.exitcode == 0
    assert outcome == "cancelled: from afar"
    assert writes_meanwhile == 0  # it wrote nothing between starting and raising
    s = jobstatus.get("far-job").wait(timeout=BOUND)
    assert s.is_cancelled and s["cancel"]["reason"] == "from afar"
