"""RQ with a real ``rq worker`` subprocess (forking work horses, with the scheduler)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

import jobstatus

from ._stores import store_url, stores_for_second_run
from ._support import (
    APPS,
    RQ_REDIS_DB,
    finished,
    python,
    redis_url,
    require_redis,
    scratch_dir,
    start,
    stop,
    unique,
    wait_for,
    worker_env,
)

pytest.importorskip("rq")
sys.path.insert(0, str(APPS))

import _gate  # noqa: E402
import rq_tasks as tasks  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue, Retry  # noqa: E402
from rq.command import send_stop_job_command  # noqa: E402

from jobstatus.integrations.rq import StatusQueue  # noqa: E402

pytestmark = [pytest.mark.rq, pytest.mark.timeout(180)]

SECOND_STORE = stores_for_second_run()


@dataclass
class Worker:
    store_url: str
    queue: StatusQueue
    log: Path


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite-store"),
        pytest.param(SECOND_STORE, id=f"{SECOND_STORE}-store"),
    ],
)
def worker(
    request: pytest.FixtureRequest,
) -> Iterator[Worker]:
    require_redis()
    with scratch_dir("rq") as folder:
        url = store_url(request.param, folder)
        broker = redis_url(RQ_REDIS_DB)
        connection = Redis.from_url(broker)
        queue = StatusQueue(unique("jobstatus-rq"), connection=connection)
        log = folder / "worker.log"
        rq = str(Path(python()).parent / "rq")
        command = [
            rq,
            "worker",
            "-w",
            "jobstatus.integrations.rq.StatusWorker",
            "--url",
            broker,
            "--with-scheduler",
            "--name",
            queue.name,
            queue.name,
        ]
        process = start(command, worker_env(url), log)
        try:
            jobstatus.configure(store=url)
            finished(queue.enqueue(tasks.add, 1, 2), timeout=60)
            yield Worker(url, queue, log)
        finally:
            stop(process)
            queue.delete(delete_jobs=True)
            connection.close()


@pytest.fixture(autouse=True)
def _worker_store(worker: Worker) -> None:
    jobstatus.configure(store=worker.store_url)


def test_queued_then_working_then_completed_with_progress(worker: Worker) -> None:
    gate = unique("gate")
    job = worker.queue.enqueue(tasks.gated, gate, 5)
    s = wait_for(job, lambda s: s.is_working and s.get("step") == "waiting")
    assert s["queued_at"] <= s["started_at"] and s["attempts"] == 1
    assert s.progress.current == 1 and s.progress.total == 5
    assert s["serialized_job"]["name"] == "rq_tasks.gated"
    assert s["serialized_job"]["queue"] == worker.queue.name
    _gate.open_gate(gate)
    done = finished(job)
    assert done.is_completed
    assert done.progress.current == 5 and done["step"] == "done"  # held, flushed at the end


def test_completed_is_recorded_before_rq_stores_the_result(worker: Worker) -> None:
    job = worker.queue.enqueue(tasks.add, 20, 22)
    wait_for(job, lambda s: job.latest_result() is not None, timeout=30)
    assert job.return_value() == 42
    assert jobstatus.get(job).is_completed


def test_queued_is_recorded_when_enqueued(worker: Worker) -> None:
    job = worker.queue.enqueue_in(timedelta(minutes=5), tasks.add, 1, 1)
    s = jobstatus.get(job)
    assert s.is_queued and "attempts" not in s
    job.cancel()


def test_failure_records_the_exception(worker: Worker) -> None:
    s = finished(worker.queue.enqueue(tasks.fail, "no such row"))
    assert s.is_failed
    assert s["exception"] == {"class": "ValueError", "message": "no such row"}


def test_retry_goes_back_to_queued_and_counts_attempts(worker: Worker) -> None:
    job = worker.queue.enqueue(tasks.fail_once, unique("count"), retry=Retry(max=2, interval=2))
    queued_again = wait_for(job, lambda s: s.is_queued and s.get("attempts") == 1)
    assert queued_again["exception"]["class"] == "ConnectionError"
    s = finished(job)
    assert s.is_completed and s["attempts"] == 2


def test_failure_after_the_last_retry_is_failed(worker: Worker) -> None:
    s = finished(worker.queue.enqueue(tasks.always_fail, retry=Retry(max=1)))
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"]["message"] == "every time"


def test_returning_retry_after_the_last_retry_is_failed(worker: Worker) -> None:
    job = worker.queue.enqueue(tasks.returns_retry)
    if not hasattr(job, "number_of_retries"):
        pytest.skip("this RQ does not retry a job that returns Retry")
    s = finished(job)
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"]["class"] == "jobstatus.integrations.rq.RetriesExceeded"


def test_timed_out_job_is_failed(worker: Worker) -> None:
    s = finished(worker.queue.enqueue(tasks.too_slow, job_timeout=1))
    assert s.is_failed
    assert s["exception"]["class"] == "rq.timeouts.JobTimeoutException"


def test_stopped_job_is_failed(worker: Worker) -> None:
    job = worker.queue.enqueue(tasks.gated, unique("gate"), 3)
    wait_for(job, lambda s: s.is_working)
    send_stop_job_command(worker.queue.connection, job.id)
    s = finished(job)
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.JobStopped"


def test_killed_work_horse_is_failed(worker: Worker) -> None:
    s = finished(worker.queue.enqueue(tasks.killed))
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.WorkHorseLost"


def test_canceled_job_is_failed(worker: Worker) -> None:
    job = worker.queue.enqueue_in(timedelta(minutes=5), tasks.add, 1, 1)
    job.cancel()
    s = jobstatus.get(job)
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.rq.JobCanceled"


def test_deferred_job_is_queued_until_it_runs(worker: Worker) -> None:
    gate = unique("gate")
    first = worker.queue.enqueue(tasks.gated, gate, 2)
    second = worker.queue.enqueue(tasks.add, 2, 3, depends_on=first)
    assert jobstatus.get(second).is_queued
    _gate.open_gate(gate)
    assert finished(second).is_completed


def test_swallowed_exception_with_catch_exception_stays_failed(worker: Worker) -> None:
    s = finished(worker.queue.enqueue(tasks.swallow))
    assert s.is_failed
    assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}


def test_function_opted_out_is_not_recorded(worker: Worker) -> None:
    job = worker.queue.enqueue(tasks.untracked)
    wait_for(job, lambda s: job.latest_result() is not None)
    assert not jobstatus.get(job).exists


def test_per_function_options_apply(worker: Worker) -> None:
    s = finished(worker.queue.enqueue(tasks.minimal))
    assert s.is_completed and "serialized_job" not in s


def test_worker_records_jobs_from_a_plain_rq_queue(worker: Worker) -> None:
    plain = Queue(worker.queue.name, connection=worker.queue.connection)
    ok, bad = plain.enqueue("rq_tasks.add", 1, 2), plain.enqueue("rq_tasks.fail", "plain")
    completed, failed = finished(ok), finished(bad)
    assert completed.is_completed and "queued_at" not in completed
    assert failed.is_failed and failed["exception"]["message"] == "plain"


def test_worker_log_has_no_jobstatus_warnings(worker: Worker) -> None:
    assert "jobstatus could not" not in worker.log.read_text()
