"""Celery's own outcomes, with a real worker (prefork, two children) on Redis and RabbitMQ
brokers; the lifecycle every queue shares is in contract/."""

from __future__ import annotations

import pytest

import jobstatus

from ._support import finished, unique, wait_for
from .queues import CeleryWorker, _gate, _script, on_workers

pytestmark = [on_workers("celery"), pytest.mark.timeout(180)]


def test_a_plain_task_tracked_by_the_app_completes(worker: CeleryWorker) -> None:
    result = worker.send("add", 20, 22)
    assert result.get(timeout=30) == 42
    s = finished(result)
    assert s.is_completed and s["attempts"] == 1


def test_ignored_task_is_completed(worker: CeleryWorker) -> None:
    assert finished(worker.send("ignored")).is_completed


def test_rejected_task_is_failed(worker: CeleryWorker) -> None:
    s = finished(worker.send("rejected"))
    assert s.is_failed and s["exception"]["class"] == "celery.exceptions.Reject"


def test_rejected_and_requeued_task_runs_again(worker: CeleryWorker) -> None:
    s = finished(worker.send("requeued_once", unique("count")))
    assert s.is_completed and s["attempts"] == 2


def test_requeue_of_an_acknowledged_message_is_failed(worker: CeleryWorker) -> None:
    s = finished(worker.send("requeue_too_late"))
    assert s.is_failed and s["exception"]["class"] == "celery.exceptions.Reject"


def test_soft_time_limit_is_failed(worker: CeleryWorker) -> None:
    s = finished(worker.send("soft_limit"))
    assert s.is_failed
    assert s["exception"]["class"] == "billiard.exceptions.SoftTimeLimitExceeded"


def test_revoked_before_it_runs_is_cancelled(worker: CeleryWorker) -> None:
    task_id = unique("revoked")
    worker.app.control.revoke(task_id, reply=True, timeout=5)
    worker.task("add").apply_async((1, 1), task_id=task_id)
    s = finished(task_id)
    assert s.is_cancelled and "finished_at" in s and "exception" not in s
    assert [entry["status"] for entry in s.history] == ["queued", "cancelled"]


def test_revoked_and_terminated_while_running_is_cancelled(worker: CeleryWorker) -> None:
    result = worker.send("gated", worker.gate(), 3)
    wait_for(result, lambda s: s.is_working)
    result.revoke(terminate=True)
    s = finished(result)
    # The worker's main process records it; the pool process its SIGTERM unwinds does not.
    assert s.is_cancelled and s["attempts"] == 1
    assert [entry["status"] for entry in s.history] == ["queued", "working", "cancelled"]


def test_expired_before_it_runs_is_failed(worker: CeleryWorker) -> None:
    s = finished(worker.task("add").apply_async((1, 1), expires=-1))
    assert s.is_failed and s["exception"]["message"] == "expired"


def test_hard_time_limit_is_failed(worker: CeleryWorker) -> None:
    s = finished(worker.send("too_slow"))
    assert s.is_failed
    assert s["exception"]["class"] == "billiard.exceptions.TimeLimitExceeded"


def test_killed_worker_child_is_failed(worker: CeleryWorker) -> None:
    s = finished(worker.send("killed"))
    assert s.is_failed
    assert s["exception"]["class"] == "billiard.exceptions.WorkerLostError"


def test_unknown_task_is_failed(worker: CeleryWorker) -> None:
    result = worker.app.send_task("celery_tasks.no_such_task")
    assert jobstatus.get(result).is_queued
    assert finished(result).is_failed


def test_a_chord_header_is_a_group_and_its_body_its_continuation(worker: CeleryWorker) -> None:
    from celery import chord

    header = [worker.task("add").s(n, n) for n in range(3)]
    body = chord(header)(worker.task("total").s())
    assert body.get(timeout=60) == 6
    group_id = body.parent.id  # the header's GroupResult
    g = finished(group_id)
    assert g.is_completed and g["children"]["completed"] == 3
    assert g.name == "celery_tasks.total" and g["continuation"] == body.id
    continuation = finished(body)
    assert continuation.is_completed and "parent" not in continuation
    assert continuation.name == "celery_tasks.total"


def test_a_plain_group_is_named_group(worker: CeleryWorker) -> None:
    group_id, jobs = worker.send_group("add", [(1, 1), (2, 2)])
    for job in jobs:
        finished(job)
    g = finished(group_id)
    assert g.name == "group" and "continuation" not in g
    assert g["children"]["completed"] == 2


def test_a_tasks_own_parent_option_puts_every_job_in_that_group(worker: CeleryWorker) -> None:
    g = jobstatus.group(name="fixed", group_id="celery-tasks-group")
    s = finished(worker.send("in_group"))
    assert s.is_completed and s["parent"] == g.job_id
    assert jobstatus.get(g.job_id)["children"]["completed"] >= 1


def test_parent_given_at_publish_overrides_the_tasks_own(worker: CeleryWorker) -> None:
    jobstatus.group(group_id="celery-tasks-group")
    other = jobstatus.group(name="other")
    s = finished(worker.send_child(other.job_id, "in_group"))
    assert s["parent"] == other.job_id


def test_a_job_published_without_jobstatus_still_joins_its_celery_group(
    worker: CeleryWorker,
) -> None:
    code = (
        "import sys; from celery import Celery, group\n"
        "app = Celery(broker=sys.argv[1])\n"
        "sigs = [app.signature('celery_tasks.add', (n, n), queue=sys.argv[2]) for n in range(2)]\n"
        "result = group(sigs).apply_async()\n"
        "print(result.id, *[child.id for child in result.results])\n"
    )
    group_id, *ids = _script(code, worker.broker, worker.queue)
    for job_id in ids:
        assert finished(job_id)["parent"] == group_id
    g = finished(group_id)
    assert g.is_completed and g["children"]["completed"] == 2
    assert "queued_at" not in jobstatus.get(ids[0])  # the worker made the group and records


def test_cancel_of_a_celery_group_revokes_its_queued_children(worker: CeleryWorker) -> None:
    busy = worker.occupy()
    group_id, jobs = worker.send_group("gated", [(worker.gate(), 2) for _ in range(3)])
    assert jobstatus.cancel(group_id)
    for gate in busy:
        _gate.open_gate(gate)
    for job in jobs:
        s = finished(job)
        assert s.is_cancelled and "attempts" not in s, s.to_dict()
    g = finished(group_id)
    assert g.is_cancelled and g["children"]["cancelled"] == 3


def test_a_cancelled_task_with_autoretry_is_not_run_again(worker: CeleryWorker) -> None:
    gate = worker.gate()
    result = worker.send("autoretried", gate)
    wait_for(result, lambda s: s.get("step") == "waiting")
    assert jobstatus.cancel(result)
    s = finished(result, timeout=60)
    assert s.is_cancelled and s["attempts"] == 1
    history = [entry["status"] for entry in jobstatus.get(result).history]
    assert history == ["queued", "working", "cancel_requested", "cancelled"]


def test_a_parent_header_from_a_publisher_without_jobstatus_is_read_by_the_worker(
    worker: CeleryWorker,
) -> None:
    g = jobstatus.group(name="plain")
    code = (
        "import sys; from celery import Celery\n"
        "app = Celery(broker=sys.argv[1])\n"
        "headers = {'jobstatus_parent': sys.argv[3]}\n"
        "print(app.send_task('celery_tasks.add', (1, 2), queue=sys.argv[2], headers=headers).id)\n"
    )
    [job_id] = _script(code, worker.broker, worker.queue, g.job_id)
    s = finished(job_id)
    assert s.is_completed and s["parent"] == g.job_id and "queued_at" not in s
    assert jobstatus.get(g.job_id)["children"]["completed"] == 1


@pytest.mark.parametrize("task", ["opens", "gated"])  # guarded run; StatusTask.__call__
def test_a_cancel_whose_revoke_never_reached_the_worker_is_refused_at_start(
    worker: CeleryWorker, task: str
) -> None:
    from celery.exceptions import TaskRevokedError

    from jobstatus._revokers import register_revoker, revokers
    from jobstatus.integrations import celery as integration

    busy, side_effect = worker.occupy(), unique("side-effect")
    result = (
        worker.send(task, side_effect, 2) if task == "gated" else worker.send(task, side_effect)
    )
    revokers.unregister("celery")  # as a process that does not know the task would
    try:
        assert jobstatus.cancel(result)
    finally:
        register_revoker("celery", integration._revoke)
    for gate in busy:
        _gate.open_gate(gate)
    s = finished(result)
    assert s.is_cancelled and "attempts" not in s and "step" not in s, s.to_dict()
    assert [entry["status"] for entry in s.history] == ["queued", "cancel_requested", "cancelled"]
    with pytest.raises(TaskRevokedError, match="before it started"):
        result.get(timeout=30)
    assert not _gate.is_open(side_effect)  # the task's code never ran
