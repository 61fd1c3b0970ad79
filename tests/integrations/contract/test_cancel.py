"""Cancel on every queue (SPEC 4 and 9), from a real worker of each (the QUEUES of
../queues.py): a cancelled queued job never runs, a running one stops at its next
progress call, neither is retried; and the queue's own revoke, abort or stop records
``cancelled`` where the queue has one."""

from __future__ import annotations

import pytest

import jobstatus

from .._support import TIMEOUT, finished, wait_for
from ..queues import QUEUE_REVOKE, QUEUE_STOP, Worker, _gate, on_workers

pytestmark = pytest.mark.timeout(240)

# Stores that do not push deliver a request to a running job with its next write or
# heartbeat (15 s by default): the wait for it may take that much longer.
DELIVERED = 2 * TIMEOUT


def statuses(s: jobstatus.Status) -> list[str]:
    return [entry["status"] for entry in s.history]


def assert_never_ran(s: jobstatus.Status) -> None:
    """A ``gated`` job that never ran: cancelled, no attempt, none of its own writes."""
    assert s.is_cancelled and "finished_at" in s, s.to_dict()
    assert "attempts" not in s and "started_at" not in s
    assert "step" not in s and s.progress.total is None  # gated's first writes
    assert "working" not in statuses(s)


@on_workers()
def test_a_cancelled_queued_job_never_runs_and_is_cancelled(worker: Worker) -> None:
    busy = worker.occupy()
    job = worker.send("gated", worker.gate(), 3)
    assert jobstatus.get(job).is_queued
    assert jobstatus.cancel(job, reason="not needed")
    s = jobstatus.get(job)
    assert s["cancel"]["reason"] == "not needed"
    # Pending until a worker refuses it, or cancelled at once by the queue's own
    # revoke where the integration records it (RQ's cancel, arq's abort): SPEC 9.
    assert s.cancel_requested or s.is_cancelled, s.to_dict()
    for gate in busy:
        _gate.open_gate(gate)
    s = finished(job)
    assert_never_ran(s)
    assert statuses(s) == ["queued", "cancel_requested", "cancelled"]
    assert not jobstatus.cancel(job)  # finished: nothing more to cancel


@on_workers()
def test_a_cancelled_running_job_raises_cancelled_and_is_not_retried(worker: Worker) -> None:
    job = worker.send("gated", worker.gate(), 3)
    wait_for(job, lambda s: s.is_working and s.get("step") == "waiting", log=worker.log)
    assert jobstatus.cancel(job, reason="stop")
    s = finished(job, timeout=DELIVERED)
    assert s.is_cancelled and "finished_at" in s, s.to_dict()
    assert s["attempts"] == 1 and s["step"] == "waiting"
    assert statuses(s) == ["queued", "working", "cancel_requested", "cancelled"]
    assert not s.cancel_requested


@on_workers(supporting=QUEUE_REVOKE)
def test_cancel_of_a_queued_job_goes_through_the_queues_own_revoke(worker: Worker) -> None:
    busy = worker.occupy()
    job = worker.send("gated", worker.gate(), 3)
    assert jobstatus.cancel(job)
    worker.wait_for_the_revoke(job)
    for gate in busy:
        _gate.open_gate(gate)
    assert_never_ran(finished(job))
    assert worker.revoked_by_queue(job)


@on_workers(supporting=QUEUE_REVOKE)
def test_the_queues_own_revoke_of_a_queued_job_is_cancelled(worker: Worker) -> None:
    busy = worker.occupy()
    job = worker.send("gated", worker.gate(), 3)
    worker.revoke(job)
    worker.wait_for_the_revoke(job)
    for gate in busy:
        _gate.open_gate(gate)
    s = finished(job)
    assert_never_ran(s)
    assert statuses(s) == ["queued", "cancelled"]


@on_workers(supporting=QUEUE_STOP)
def test_the_queues_own_stop_of_a_running_job_is_cancelled(worker: Worker) -> None:
    job = worker.send("gated", worker.gate(), 3)
    wait_for(job, lambda s: s.is_working and s.get("step") == "waiting", log=worker.log)
    worker.stop(job)
    s = finished(job)
    assert s.is_cancelled and "finished_at" in s, s.to_dict()
    assert s["attempts"] == 1
    assert statuses(s) == ["queued", "working", "cancelled"]
