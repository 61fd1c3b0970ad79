"""Huey's own outcomes, with a real consumer (RedisHuey, then SqliteHuey); the lifecycle
every queue shares is in contract/."""

from __future__ import annotations

import time

import pytest

import jobstatus

from ._support import finished, wait_for, wait_until
from .queues import HueyWorker, _gate, on_workers

pytestmark = [on_workers("huey"), pytest.mark.timeout(120)]


def test_revoked_before_it_runs_is_cancelled(worker: HueyWorker) -> None:
    import huey_app

    result = huey_app.add.schedule((1, 1), delay=0.5)
    result.revoke()
    s = finished(result)
    assert s.is_cancelled and "attempts" not in s and "exception" not in s


def test_expired_before_it_runs_is_failed(worker: HueyWorker) -> None:
    import huey_app

    gates = [worker.gate(), worker.gate()]
    busy = [worker.send("gated", gate, 1) for gate in gates]  # both workers wait at a gate
    for result in busy:
        wait_for(result, lambda s: s.is_working)
    result = huey_app.huey.enqueue(huey_app.add.s(1, 1, expires=0.2))
    wait_until(lambda: jobstatus.get(result).is_queued, "queued")
    time.sleep(0.5)  # it expires while waiting in the queue
    for gate in gates:
        _gate.open_gate(gate)
    s = finished(result)
    assert s.is_failed and "attempts" not in s
    assert s["exception"]["class"] == "jobstatus.integrations.huey.TaskExpired"


def test_cancelled_by_a_pre_execute_hook_is_cancelled(worker: HueyWorker) -> None:
    s = finished(worker.send("cancelled_by_hook"))
    assert s.is_cancelled and "exception" not in s


def test_cancel_execution_without_retry_is_cancelled(worker: HueyWorker) -> None:
    s = finished(worker.send("cancel_itself"))
    assert s.is_cancelled and s["attempts"] == 1
    assert [entry["status"] for entry in s.history] == ["queued", "working", "cancelled"]


def test_a_cancelled_task_with_retries_left_is_not_retried(worker: HueyWorker) -> None:
    import huey_app

    marker = worker.gate()
    result = huey_app.gated_with_retries(worker.gate(), marker)
    wait_for(result, lambda s: s.is_working)
    assert jobstatus.cancel(result, reason="enough")
    s = finished(result)
    assert s.is_cancelled and s["attempts"] == 1
    time.sleep(3)  # past its retry delay: a retry would have started by now
    assert _gate.incr(marker) == 2  # the task ran once
    assert jobstatus.get(result)["attempts"] == 1


def test_a_task_declared_with_a_parent_joins_that_group(worker: HueyWorker) -> None:
    import huey_app

    g = jobstatus.group(name="declared", group_id=huey_app.DECLARED_GROUP)
    results = [worker.send("in_declared_group") for _ in range(2)]
    for result in results:
        assert finished(result)["parent"] == g.job_id
    group = wait_for(g, lambda s: s.is_finished)
    assert group.is_completed and group["children"]["completed"] == 2


def test_task_whose_lock_is_held_is_failed(worker: HueyWorker) -> None:
    import huey_app

    lock = huey_app.huey.lock_task("jobstatus-test-lock")
    lock.acquire()  # held here, so the task cannot take it
    try:
        s = finished(worker.send("locked"))
    finally:
        lock.clear()
    assert s.is_failed
    assert s["exception"]["class"] == "huey.exceptions.TaskLockedException"


def test_tasks_enqueued_within_children_of_join_the_group(worker: HueyWorker) -> None:
    from jobstatus.integrations.huey import children_of

    g = jobstatus.group(name="huey batch")
    with children_of(g) as group_id:
        results = [worker.send("add", n, n) for n in range(3)]
    outside = worker.send("add", 9, 9)
    assert group_id == g.job_id
    for result in results:
        assert finished(result)["parent"] == g.job_id
    assert "parent" not in finished(outside)
    group = wait_for(g, lambda s: s.is_finished)
    assert group.is_completed and group["children"]["completed"] == 3


def test_children_of_a_job_that_is_no_group_is_refused(worker: HueyWorker) -> None:
    from jobstatus.integrations.huey import children_of

    with pytest.raises(ValueError, match="does not exist"), children_of("no-such-group"):
        pass
