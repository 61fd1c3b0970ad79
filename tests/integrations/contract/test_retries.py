"""Retries on every queue that has them: queued again with the attempts kept."""

from __future__ import annotations

import pytest

from .._support import finished, unique, wait_for
from ..queues import RETRIES, Worker, _gate, on_workers

pytestmark = [on_workers(supporting=RETRIES), pytest.mark.timeout(180)]


def test_a_retry_goes_back_to_queued_and_keeps_the_attempts(worker: Worker) -> None:
    first_try, busy = worker.gate(), worker.gate()
    job = worker.send("retry_once", unique("once"), first_try)
    wait_for(job, lambda s: s.is_working, log=worker.log)
    # Queued behind the first try: a worker with one slot runs it before the retry.
    blocker = worker.send("gated", busy, 1)
    _gate.open_gate(first_try)
    queued_again = wait_for(job, lambda s: s.is_queued and s.get("attempts") == 1)
    assert queued_again["exception"]["class"] == worker.case.retried
    _gate.open_gate(busy)
    s = finished(job)
    assert s.is_completed and s["attempts"] == 2
    assert finished(blocker).is_completed


def test_a_failure_after_the_last_retry_is_failed(worker: Worker) -> None:
    s = finished(worker.send("always_fail"))
    assert s.is_failed and s["attempts"] == 2
    name, message = worker.case.exhausted
    assert s["exception"] == {"class": name, "message": message}
