"""What every queue records, from a real worker of each (the QUEUES of ../queues.py)."""

from __future__ import annotations

import pytest

import jobstatus

from .._support import finished, wait_for
from ..queues import Worker, _gate, on_workers

pytestmark = [on_workers(), pytest.mark.timeout(180)]


def test_queued_then_working_with_progress_and_data_then_completed(worker: Worker) -> None:
    gate = worker.gate()
    job = worker.send("gated", gate, 5)
    s = wait_for(job, lambda s: s.is_working and s.get("step") == "waiting", log=worker.log)
    assert s["queued_at"] <= s["started_at"] and s["attempts"] == 1
    assert s.progress.current == 1 and s.progress.total == 5
    assert s.name == s["serialized_job"]["name"] == worker.case.task_name("gated")
    assert s["serialized_job"]["args"] == [gate, 5]
    assert s["serialized_job"]["queue"] == worker.recorded_queue
    _gate.open_gate(gate)
    done = finished(job)
    assert done.is_completed, done.to_dict()
    assert done.progress.current == 5 and done.progress.percent == 100
    assert done["step"] == "done"  # a throttled change, held until the end
    assert "finished_at" in done


def test_queued_is_recorded_with_the_task_name_when_published(worker: Worker) -> None:
    job = worker.send_later("add", 2, 2)
    s = jobstatus.get(job)
    assert s.is_queued and "queued_at" in s and "attempts" not in s
    assert s.name == worker.case.task_name("add")


def test_a_failure_is_failed_and_the_queue_sees_the_exception(worker: Worker) -> None:
    job = worker.send("fail", "no such row")
    s = finished(job)
    assert s.is_failed and "finished_at" in s
    assert s["exception"] == {"class": "ValueError", "message": "no such row"}
    assert worker.raised(job) == "ValueError"


def test_a_swallowed_exception_marked_with_catch_exception_stays_failed(worker: Worker) -> None:
    s = finished(worker.send("swallow"))
    assert s.is_failed
    assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}


def test_per_task_options_apply(worker: Worker) -> None:
    s = finished(worker.send("plain_record"))
    assert s.is_completed
    assert "serialized_job" not in s  # the task's includes replace the app's
