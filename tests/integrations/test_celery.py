"""Celery's own outcomes, with a real worker (prefork, two children) on Redis and RabbitMQ
brokers; the lifecycle every queue shares is in contract/."""

from __future__ import annotations

import pytest

import jobstatus

from ._support import finished, unique, wait_for
from .queues import CeleryWorker, on_workers

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
