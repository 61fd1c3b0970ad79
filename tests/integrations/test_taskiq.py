"""Taskiq's own outcomes, with a real worker on taskiq-redis (statuses in SQLite, then in
Redis); the lifecycle every queue shares is in contract/."""

from __future__ import annotations

import pytest

from ._support import finished
from .queues import TaskiqWorker, on_workers

pytestmark = [on_workers("taskiq"), pytest.mark.timeout(120)]


def test_sync_task_runs_in_a_thread_as_the_job(worker: TaskiqWorker) -> None:
    job = worker.send("sync_add", 20, 22)
    assert worker.result(job) == 42
    s = finished(job)
    assert s.is_completed and s["thread"] is True


def test_timeout_is_failed(worker: TaskiqWorker) -> None:
    s = finished(worker.send("too_slow"))
    assert s.is_failed and s["exception"]["class"] == "TimeoutError"


def test_no_result_error_is_completed(worker: TaskiqWorker) -> None:
    s = finished(worker.send("no_result"))
    assert s.is_completed and "exception" not in s
