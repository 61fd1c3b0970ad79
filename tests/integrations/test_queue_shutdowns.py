"""A worker stopped while a task runs: Huey reports it interrupted (failed), arq runs it
again (queued, then completed by the next worker)."""

from __future__ import annotations

import os
import signal
import time

import pytest

import jobstatus

from ._support import finished, require_redis, stop, wait_for
from .queues import ArqWorker, _gate, run_of

pytestmark = pytest.mark.timeout(120)


@pytest.mark.huey
def test_huey_task_interrupted_by_a_consumer_stop_is_failed() -> None:
    require_redis()
    with run_of("huey", "redis").start() as worker:
        job = worker.send("gated", worker.gate(), 2)
        wait_for(job, lambda s: s.is_working)
        os.killpg(worker.process.pid, signal.SIGTERM)  # Huey's immediate (not graceful) stop
        s = finished(job)
        assert s.is_failed
        assert s["exception"]["class"] == "jobstatus.integrations.huey.TaskInterrupted"
        worker.after_test()


@pytest.mark.arq
def test_arq_job_cancelled_by_a_worker_shutdown_is_queued_then_run_again() -> None:
    require_redis()
    with run_of("arq").start() as worker:
        assert isinstance(worker, ArqWorker)
        gate = worker.gate()
        job = worker.send("gated", gate, 2)
        second = None
        try:
            wait_for(job, lambda s: s.is_working)
            os.killpg(worker.process.pid, signal.SIGTERM)  # arq cancels the job, to run again
            # On Python 3.10, asyncio.wait_for (arq runs each job in one) can lose a cancel
            # (CPython gh-86296, fixed in 3.12): a user signals again, and so does this test.
            for _ in range(10):
                if jobstatus.get(job).is_queued or worker.process.poll() is not None:
                    break
                time.sleep(2)
                if not jobstatus.get(job).is_queued and worker.process.poll() is None:
                    os.killpg(worker.process.pid, signal.SIGTERM)
            s = wait_for(job, lambda s: s.is_queued)
            assert s["attempts"] == 1
            worker.process.wait(timeout=30)
            _gate.open_gate(gate)
            second = worker.another(worker.log.with_name("second.log"))
            done = finished(job)
            assert done.is_completed and done["attempts"] == 2
            assert jobstatus.get(job).name == "gated"
        finally:
            if second is not None:
                stop(second)
            worker.after_test()
