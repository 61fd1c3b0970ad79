"""Functions that run in other processes during tests (importable by spawned children)."""

from __future__ import annotations

import time
from pathlib import Path

import jobstatus
from jobstatus import Job


def increment(url: str, job_id: str, times: int, start_at: float) -> None:
    """Add 1 to the job's progress ``times`` times, one write each."""
    jobstatus.configure(store=url)
    status = Job(job_id).status
    _sleep_until(start_at)
    for _ in range(times):
        status.progress.increment()


def write_keys(url: str, job_id: str, prefix: str, count: int, start_at: float) -> None:
    """Write ``count`` keys of its own to one shared record."""
    jobstatus.configure(store=url)
    status = Job(job_id).status
    _sleep_until(start_at)
    for n in range(count):
        status[f"{prefix}{n}"] = n


def set_key(url: str, job_id: str, key: str, value: object) -> None:
    """One write from outside a job: it raises StoreError (and the process exits 1) on failure."""
    jobstatus.configure(store=url)
    jobstatus.get(job_id)[key] = value


def slow_job(url: str, job_id: str, steps: int, pause: float) -> None:
    """A job whose progress moves one step every ``pause`` seconds."""
    jobstatus.configure(store=url)
    job = Job(job_id)
    job.started()
    job.status.progress.total = steps
    for _ in range(steps):
        time.sleep(pause)
        job.status.progress.increment()
    job.finished()


@jobstatus.track
def tracked_square(n: int) -> int:
    """A tracked function for process pools."""
    status = jobstatus.current()
    status.progress.total = n
    for _ in range(n):
        status.progress.increment()
    status["pid_note"] = "ran in a worker"
    return n * n


@jobstatus.track(includes={"status", "exception"})
def tracked_failure() -> None:
    raise RuntimeError("failed in a worker process")


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def group_children(url: str, group_id: str, first: int, count: int, start_at: float) -> None:
    """Run ``count`` children of ``group_id`` through started and finished (every
    third one fails), ids ``child-<first + n>``: two moves of the group each."""
    jobstatus.configure(store=url, heartbeat_interval=0)
    _sleep_until(start_at)
    for n in range(first, first + count):
        job = Job(f"child-{n}", parent=group_id)
        job.started()
        job.finished(ValueError("every third") if n % 3 == 0 else None)


def wait_for_cancel(url: str, job_id: str, bound: float) -> None:
    """Run a job that writes ``ready``, then waits, writing nothing, until it learns of
    its cancel; exits 0 when it learned by the store's push and raised Cancelled."""
    import sys

    jobstatus.configure(store=url, heartbeat_interval=0)
    learned: list[bool] = []

    def work() -> None:
        status = jobstatus.current()
        status.update(ready=True, force=True)
        deadline = time.monotonic() + bound
        while not status.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.001)
        learned.append(status.cancel_requested)  # no write since "ready": only a push
        status.progress.increment()  # raises Cancelled

    try:
        Job(job_id).run(work, (), {})
    except jobstatus.Cancelled:
        sys.exit(0 if learned == [True] else 2)
    sys.exit(1)


def wait_for_file(path: str, bound: float) -> None:
    """Keep a pool's worker busy until ``path`` exists (``bound`` seconds at most)."""
    deadline = time.monotonic() + bound
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def create_file(path: str) -> None:
    """A job whose only effect is a file: it exists once the job's code ran."""
    Path(path).write_text("ran")


def loop_until_cancelled(bound: float) -> str:
    """A job that makes progress until its cancel stops it (``bound`` seconds at most)."""
    status = jobstatus.current()
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        status.progress.increment()
        time.sleep(0.005)
    return "never cancelled"
