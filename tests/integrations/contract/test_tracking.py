"""Which jobs are recorded: none of an opted-out task, and those of a publisher that
does not use jobstatus (its worker records them)."""

from __future__ import annotations

import pytest

import jobstatus

from .._support import finished, wait_until
from ..queues import OPT_OUT, PLAIN_PUBLISHER, RESULT_AFTER_RECORD, Worker, _gate, on_workers

pytestmark = pytest.mark.timeout(180)


@on_workers(supporting=OPT_OUT)
def test_a_task_opted_out_leaves_no_record(worker: Worker) -> None:
    gate = worker.gate()
    job = worker.send("untracked", gate)
    wait_until(lambda: _gate.is_open(gate), "the untracked task to run")
    assert not jobstatus.get(job).exists


@on_workers(supporting=PLAIN_PUBLISHER)
def test_the_worker_records_jobs_of_a_publisher_without_jobstatus(worker: Worker) -> None:
    completed, failed = (
        finished(worker.send_plain("add", 1, 2)),
        finished(worker.send_plain("fail", "plain")),
    )
    assert completed.is_completed and "queued_at" not in completed
    assert completed["attempts"] == 1 and completed.name == worker.case.task_name("add")
    assert failed.is_failed and failed["exception"]["message"] == "plain"


@on_workers(supporting=RESULT_AFTER_RECORD)
def test_the_outcome_is_recorded_before_the_queue_stores_the_result(worker: Worker) -> None:
    gate = worker.gate()
    job = worker.send("gated", gate, 2)
    _gate.open_gate(gate)
    assert worker.result(job) == "released"
    assert jobstatus.get(job).is_completed  # read at once, no waiting
