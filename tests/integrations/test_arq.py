"""arq's own outcomes, with a real worker on Redis (statuses in SQLite, then in Redis);
the lifecycle every queue shares is in contract/."""

from __future__ import annotations

import asyncio
import sys

import pytest

import jobstatus

from ._support import TIMEOUT, finished, wait_for, wait_until
from .queues import ArqWorker, _gate, on_workers

pytestmark = [on_workers("arq"), pytest.mark.timeout(120)]

# arq raises asyncio.TimeoutError: the builtin from Python 3.11, its own class before.
TIMEOUT_ERROR = "TimeoutError" if sys.version_info >= (3, 11) else "asyncio.exceptions.TimeoutError"


def test_timeout_is_failed(worker: ArqWorker) -> None:
    s = finished(worker.send("too_slow"))
    assert s.is_failed and s["exception"]["class"] == TIMEOUT_ERROR


def test_aborted_while_running_is_cancelled(worker: ArqWorker) -> None:
    job = worker.send("gated", worker.gate(), 3)
    wait_for(job, lambda s: s.is_working)
    assert worker.call(job.abort(timeout=TIMEOUT, poll_delay=0.1))
    s = finished(job)
    assert s.is_cancelled and "finished_at" in s and "exception" not in s
    assert [entry["status"] for entry in s.history] == ["queued", "working", "cancelled"]


def test_a_job_cancelled_before_it_starts_does_not_run(worker: ArqWorker) -> None:
    gate = worker.gate()
    job = worker.send("opens", gate, _defer_by=2)
    assert jobstatus.cancel(job, reason="not needed")
    s = finished(job, timeout=TIMEOUT)
    assert s.is_cancelled and "attempts" not in s
    with pytest.raises(asyncio.CancelledError):
        worker.result(job)  # jobstatus.cancel aborted it in arq: dropped unrun
    assert not _gate.is_open(gate)


def test_a_job_cancelled_without_the_revoker_is_refused_at_its_start(worker: ArqWorker) -> None:
    from jobstatus._revokers import register_revoker, revokers
    from jobstatus.integrations import arq

    gate = worker.gate()
    job = worker.send("opens", gate, _defer_by=1)
    revokers.unregister("arq")  # as in a process that never published to arq
    try:
        assert jobstatus.cancel(job)
    finally:
        register_revoker("arq", arq._revoke)
    s = finished(job, timeout=TIMEOUT)
    assert s.is_cancelled and "attempts" not in s
    with pytest.raises(jobstatus.Cancelled):
        worker.result(job)  # arq stores the Cancelled its start raised
    assert not _gate.is_open(gate)


def test_a_job_joins_the_group_given_at_enqueue(worker: ArqWorker) -> None:
    g = jobstatus.group(name="arq batch")
    jobs = [worker.send("add", n, n, _parent=g) for n in range(3)]
    for job in jobs:
        assert finished(job)["parent"] == g.job_id
    group = wait_for(g, lambda s: s.is_finished)
    assert group.is_completed and group["children"]["completed"] == 3


def test_a_function_declared_with_a_parent_joins_that_group(worker: ArqWorker) -> None:
    import arq_app

    g = jobstatus.group(name="declared", group_id=arq_app.DECLARED_GROUP)
    job = worker.send_plain("in_declared_group")
    assert finished(job)["parent"] == g.job_id
    assert wait_for(g, lambda s: s.is_finished)["children"]["completed"] == 1


def test_a_parent_that_is_not_a_group_is_refused_at_enqueue(worker: ArqWorker) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        worker.send("add", 1, 1, _parent="no-such-group")


def test_function_opted_out_is_not_recorded_by_the_worker(worker: ArqWorker) -> None:
    gate = worker.gate()
    job = worker.send_plain("untracked", gate)  # arq's own enqueue: no queued either
    wait_until(lambda: _gate.is_open(gate), "the untracked function to run")
    assert worker.result(job) == 1
    assert not jobstatus.get(job).exists


def test_function_opted_out_but_enqueued_with_jobstatus_leaves_no_record(
    worker: ArqWorker,
) -> None:
    job = worker.send("untracked", worker.gate())  # records queued: it sees only the name
    assert worker.result(job) == 1
    assert not jobstatus.get(job).exists  # the worker deleted it before the run
