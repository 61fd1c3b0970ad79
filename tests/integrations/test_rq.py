"""RQ's own outcomes, with a real ``rq worker`` (forking work horses, with the scheduler);
the lifecycle every queue shares is in contract/."""

from __future__ import annotations

from datetime import timedelta

import pytest

import jobstatus

from ._support import finished, wait_for
from .queues import RQWorker, _gate, on_workers

pytestmark = [on_workers("rq"), pytest.mark.timeout(180)]


def test_returning_retry_after_the_last_retry_is_failed(worker: RQWorker) -> None:
    job = worker.send("returns_retry")
    if not hasattr(job, "number_of_retries"):
        pytest.skip("this RQ does not retry a job that returns Retry")
    s = finished(job)
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"]["class"] == "jobstatus.integrations.rq.RetriesExceeded"


def test_timed_out_job_is_failed(worker: RQWorker) -> None:
    import rq_tasks

    s = finished(worker.rq_queue.enqueue(rq_tasks.too_slow, job_timeout=1))
    assert s.is_failed
    assert s["exception"]["class"] == "rq.timeouts.JobTimeoutException"


def test_stopped_job_is_failed(worker: RQWorker) -> None:
    from rq.command import send_stop_job_command

    job = worker.send("gated", worker.gate(), 3)
    wait_for(job, lambda s: s.is_working)
    send_stop_job_command(worker.rq_queue.connection, job.id)
    s = finished(job)
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.JobStopped"


def test_killed_work_horse_is_failed(worker: RQWorker) -> None:
    s = finished(worker.send("killed"))
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.WorkHorseLost"


def test_canceled_job_is_failed(worker: RQWorker) -> None:
    import rq_tasks

    job = worker.rq_queue.enqueue_in(timedelta(minutes=5), rq_tasks.add, 1, 1)
    job.cancel()
    s = jobstatus.get(job)
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.JobCanceled"


def test_deferred_job_is_queued_until_it_runs(worker: RQWorker) -> None:
    import rq_tasks

    gate = worker.gate()
    first = worker.send("gated", gate, 2)
    second = worker.rq_queue.enqueue(rq_tasks.add, 2, 3, depends_on=first)
    assert jobstatus.get(second).is_queued
    _gate.open_gate(gate)
    assert finished(second).is_completed
