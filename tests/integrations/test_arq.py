"""arq's own outcomes, with a real worker on Redis (statuses in SQLite, then in Redis);
the lifecycle every queue shares is in contract/."""

from __future__ import annotations

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


def test_aborted_while_running_is_failed(worker: ArqWorker) -> None:
    job = worker.send("gated", worker.gate(), 3)
    wait_for(job, lambda s: s.is_working)
    assert worker.call(job.abort(timeout=TIMEOUT, poll_delay=0.1))
    s = finished(job)
    assert s.is_failed and s["exception"]["class"] == "asyncio.exceptions.CancelledError"


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
