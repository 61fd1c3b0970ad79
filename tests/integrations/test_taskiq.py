"""Taskiq's own outcomes, with a real worker on taskiq-redis (statuses in SQLite, then in
Redis); the lifecycle every queue shares is in contract/."""

from __future__ import annotations

import pytest

import jobstatus

from ._support import finished, unique, wait_for
from .queues import TaskiqWorker, _gate, on_workers

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


def test_a_task_cancelled_before_it_starts_does_not_run(worker: TaskiqWorker) -> None:
    gate = unique("side-effect")  # not one of the worker's gates, which the test opens
    job = worker.send_later("opens", gate)  # behind a task that holds the only slot
    assert jobstatus.cancel(job, reason="not needed")
    worker.after_test()  # opens the busy task's gate
    s = finished(job)
    assert s.is_cancelled and "attempts" not in s
    follower = worker.send("add", 1, 1)  # the worker goes on
    assert worker.result(follower) == 2
    assert not _gate.is_open(gate)


def test_a_cancelled_task_with_retries_left_is_not_retried(worker: TaskiqWorker) -> None:
    marker = worker.gate()
    job = worker.send("gated_with_retries", worker.gate(), marker)
    wait_for(job, lambda s: s.is_working)
    assert jobstatus.cancel(job, reason="enough")
    s = finished(job)
    assert s.is_cancelled and s["attempts"] == 1
    assert worker.result(worker.send("add", 2, 2)) == 4  # the re-sent message went by
    assert _gate.incr(marker) == 2  # the task ran once
    assert jobstatus.get(job)["attempts"] == 1


def test_a_message_joins_the_group_in_its_labels(worker: TaskiqWorker) -> None:
    import taskiq_app

    from jobstatus.integrations.taskiq import PARENT_LABEL

    g = jobstatus.group(name="taskiq batch")
    kicker = taskiq_app.add.kicker().with_broker(worker.broker)
    kicker = kicker.with_labels(**{PARENT_LABEL: g.job_id})
    jobs = [worker.call(kicker.kiq(n, n)) for n in range(3)]
    for job in jobs:
        assert finished(job)["parent"] == g.job_id
    group = wait_for(g, lambda s: s.is_finished)
    assert group.is_completed and group["children"]["completed"] == 3


def test_a_task_declared_with_a_parent_joins_that_group(worker: TaskiqWorker) -> None:
    import taskiq_app

    g = jobstatus.group(name="declared", group_id=taskiq_app.DECLARED_GROUP)
    job = worker.send("in_declared_group")
    assert finished(job)["parent"] == g.job_id
    assert wait_for(g, lambda s: s.is_finished)["children"]["completed"] == 1


def test_a_parent_that_is_not_a_group_is_refused_at_publish(worker: TaskiqWorker) -> None:
    import taskiq_app

    from jobstatus.integrations.taskiq import PARENT_LABEL

    kicker = taskiq_app.add.kicker().with_broker(worker.broker)
    kicker = kicker.with_labels(**{PARENT_LABEL: "no-such-group"})
    with pytest.raises(ValueError, match="does not exist"):
        worker.call(kicker.kiq(1, 1))
