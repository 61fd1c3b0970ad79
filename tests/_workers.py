"""Functions that run in other processes during tests (importable by spawned children)."""

from __future__ import annotations

import time

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
