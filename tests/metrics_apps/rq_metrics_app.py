"""The job functions test_metrics_workers runs in a real ``rq worker``."""

from __future__ import annotations

from rq import get_current_job


def add(x: int, y: int) -> int:
    return x + y


def fail() -> None:
    raise ValueError("no")


def fail_once() -> int:
    """Fail while RQ has a retry left (the first attempt of ``Retry(max=1)``), then return."""
    job = get_current_job()
    if job is not None and job.retries_left:
        raise ConnectionError("first try")
    return 2
