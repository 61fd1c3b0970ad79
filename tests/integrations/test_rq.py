"""RQ's own outcomes, with a real ``rq worker`` (forking work horses, with the scheduler);
the lifecycle every queue shares is in contract/."""

from __future__ import annotations

from datetime import timedelta

import pytest

import jobstatus

from ._support import finished, wait_for, wait_until
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


def test_stopped_job_is_cancelled(worker: RQWorker) -> None:
    from rq.command import send_stop_job_command

    job = worker.send("gated", worker.gate(), 3)
    wait_for(job, lambda s: s.is_working)
    send_stop_job_command(worker.rq_queue.connection, job.id)
    s = finished(job)
    assert s.is_cancelled and "finished_at" in s and "exception" not in s
    assert [entry["status"] for entry in s.history] == ["queued", "working", "cancelled"]


def test_killed_work_horse_is_failed(worker: RQWorker) -> None:
    s = finished(worker.send("killed"))
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.WorkHorseLost"


def test_canceled_job_is_cancelled(worker: RQWorker) -> None:
    import rq_tasks

    job = worker.rq_queue.enqueue_in(timedelta(minutes=5), rq_tasks.add, 1, 1)
    job.cancel()
    s = jobstatus.get(job)
    assert s.is_cancelled and "finished_at" in s and "attempts" not in s


def test_a_cancelled_job_with_retries_left_is_not_retried(worker: RQWorker) -> None:
    import rq_tasks
    from rq import Retry

    gate = worker.gate()
    job = worker.rq_queue.enqueue(rq_tasks.gated, gate, 3, retry=Retry(max=3))
    wait_for(job, lambda s: s.is_working)
    assert jobstatus.cancel(job, reason="enough")
    s = finished(job)
    assert s.is_cancelled and s["attempts"] == 1
    wait_until(lambda: job.get_status(refresh=True) == "failed", "RQ to fail it, not retry")
    assert jobstatus.get(job)["attempts"] == 1


def test_a_job_joins_the_group_named_in_its_meta(worker: RQWorker) -> None:
    import rq_tasks

    from jobstatus.integrations.rq import PARENT_META

    g = jobstatus.group(name="rq batch")
    jobs = [worker.rq_queue.enqueue(rq_tasks.add, n, n, meta={PARENT_META: g}) for n in range(3)]
    for job in jobs:
        assert finished(job)["parent"] == g.job_id
    group = wait_for(g, lambda s: s.is_finished)
    assert group.is_completed and group["children"]["completed"] == 3
    assert group.progress.total == 3 and group.progress.ratio == 1


def test_a_function_declared_with_a_parent_joins_that_group(worker: RQWorker) -> None:
    import rq_tasks

    g = jobstatus.group(name="declared", group_id=rq_tasks.DECLARED_GROUP)
    job = worker.send("in_declared_group")
    assert finished(job).is_completed and jobstatus.get(job)["parent"] == g.job_id
    assert wait_for(g, lambda s: s.is_finished)["children"]["completed"] == 1


def test_a_parent_that_is_not_a_group_is_refused_at_publish(worker: RQWorker) -> None:
    import rq_tasks

    from jobstatus.integrations.rq import PARENT_META

    with pytest.raises(ValueError, match="does not exist"):
        worker.rq_queue.enqueue(rq_tasks.add, 1, 1, meta={PARENT_META: "no-such-group"})
    assert worker.rq_queue.count == 0


def test_deferred_job_is_queued_until_it_runs(worker: RQWorker) -> None:
    import rq_tasks

    gate = worker.gate()
    first = worker.send("gated", gate, 2)
    second = worker.rq_queue.enqueue(rq_tasks.add, 2, 3, depends_on=first)
    assert jobstatus.get(second).is_queued
    _gate.open_gate(gate)
    assert finished(second).is_completed


def test_an_rq_group_is_a_group_under_its_name(worker: RQWorker) -> None:
    import rq_tasks
    from rq import Queue
    from rq.group import Group

    from jobstatus.integrations.rq import GROUP_NAME

    rq_group = Group.create(connection=worker.rq_queue.connection)
    datas = [Queue.prepare_data(rq_tasks.add, (n, n)) for n in range(4)]
    jobs = rq_group.enqueue_many(worker.rq_queue, datas)
    for job in jobs:
        assert finished(job)["parent"] == rq_group.name
    g = wait_for(rq_group.name, lambda s: s.is_finished)
    assert g.is_completed and g.name == GROUP_NAME
    assert g["children"]["completed"] == 4 and g.progress.total == 4
    assert [entry["status"] for entry in jobstatus.get(jobs[0]).history][0] == "queued"
