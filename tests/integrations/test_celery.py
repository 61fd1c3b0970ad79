"""Celery with a real worker subprocess (prefork, two children), on Redis and RabbitMQ brokers."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import jobstatus

from ._stores import store_url, stores_for_second_run
from ._support import (
    APPS,
    CELERY_REDIS_DB,
    RABBITMQ_URL,
    TIMEOUT,
    finished,
    python,
    redis_url,
    require_rabbitmq,
    require_redis,
    scratch_dir,
    start,
    stop,
    unique,
    wait_for,
    wait_until,
    worker_env,
)

pytest.importorskip("celery")
sys.path.insert(0, str(APPS))
# Results go to files: the Redis result backend can deadlock when an AsyncResult
# is garbage-collected during a publish (redis-py's PubSub lock is not reentrant).
RESULTS = Path(tempfile.gettempdir()) / unique("jobstatus-celery-results")
os.environ["JOBSTATUS_TEST_CELERY_BACKEND"] = f"file://{RESULTS}"

import _gate  # noqa: E402
import celery_tasks as tasks  # noqa: E402

pytestmark = [pytest.mark.celery, pytest.mark.timeout(180)]


@dataclass
class Worker:
    store_url: str
    broker: str
    queue: str
    log: Path


SECOND_STORE = stores_for_second_run()
RUNS = [
    pytest.param(("redis", "sqlite"), id="redis-broker-sqlite-store"),
    pytest.param(("amqp", SECOND_STORE), id=f"rabbitmq-broker-{SECOND_STORE}-store"),
]


@pytest.fixture(scope="module", params=RUNS)
def worker(
    request: pytest.FixtureRequest,
) -> Iterator[Worker]:
    broker_kind, store_kind = request.param
    require_redis()
    if broker_kind == "amqp":
        require_rabbitmq()
    broker = RABBITMQ_URL if broker_kind == "amqp" else redis_url(CELERY_REDIS_DB)
    with scratch_dir("celery") as folder:
        url = store_url(store_kind, folder)
        queue = unique("jobstatus-celery")
        _point_app_at(broker, queue)
        log = folder / "worker.log"
        env = worker_env(
            url,
            JOBSTATUS_TEST_CELERY_BROKER=broker,
            JOBSTATUS_TEST_CELERY_QUEUE=queue,
        )
        command = [
            python(),
            "-m",
            "celery",
            "-A",
            "celery_tasks",
            "worker",
            "-Q",
            queue,
            "-c",
            "2",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{queue}@%h",
            "-l",
            "info",
        ]
        process = start(command, env, log)
        try:
            jobstatus.configure(store=url)
            assert tasks.add.delay(1, 2).get(timeout=60) == 3, log.read_text()
            yield Worker(url, broker, queue, log)
        finally:
            stop(process)
            _purge(queue)
            tasks.app.close()


def _point_app_at(broker: str, queue: str) -> None:
    """Publish from this process to the run's broker and queue."""
    tasks.app.close()
    tasks.app.conf.broker_url = broker
    tasks.app.conf.task_default_queue = queue
    tasks.app.__dict__.pop("amqp", None)  # cached with the old queue and producer pool


def _purge(queue: str) -> None:
    with tasks.app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_delete(queue)  # or it is already gone


@pytest.fixture(scope="module", autouse=True)
def _results() -> Iterator[None]:
    RESULTS.mkdir()
    yield
    shutil.rmtree(RESULTS, ignore_errors=True)


@pytest.fixture(autouse=True)
def _worker_store(worker: Worker) -> None:
    jobstatus.configure(store=worker.store_url)


def test_queued_from_the_publisher_then_working_then_completed(worker: Worker) -> None:
    gate = unique("gate")
    result = tasks.gated.delay(gate, 5)
    s = wait_for(result, lambda s: s.is_working and s.get("step") == "waiting")
    assert s["queued_at"] <= s["started_at"]
    assert s.progress.current == 1 and s.progress.total == 5
    assert s["attempts"] == 1
    assert s["serialized_job"]["name"] == "celery_tasks.gated"
    assert s["serialized_job"]["args"] == [gate, 5]
    assert s["serialized_job"]["queue"] == worker.queue
    _gate.open_gate(gate)
    assert result.get(timeout=TIMEOUT) == "released"
    # StatusTask records the outcome before Celery stores the result.
    done = jobstatus.get(result)
    assert done.is_completed, done.to_dict()
    assert done.progress.current == 5 and done.progress.percent == 100
    assert done["step"] == "done"  # a throttled change, held until the end
    assert "finished_at" in done


def test_queued_is_recorded_when_published(worker: Worker) -> None:
    result = tasks.add.apply_async((2, 2), countdown=60)
    s = jobstatus.get(result)
    assert s.is_queued and "queued_at" in s and "attempts" not in s
    result.revoke()


def test_plain_task_tracked_by_the_app_completes(worker: Worker) -> None:
    result = tasks.add.delay(20, 22)
    assert result.get(timeout=TIMEOUT) == 42
    s = finished(result)
    assert s.is_completed and s["attempts"] == 1


def test_failure_records_the_exception(worker: Worker) -> None:
    result = tasks.fail.delay("no such row")
    s = finished(result)
    assert s.is_failed
    assert s["exception"] == {"class": "ValueError", "message": "no such row"}
    with pytest.raises(ValueError, match="no such row"):
        result.get(timeout=TIMEOUT)


def test_retry_goes_back_to_queued_and_counts_attempts(worker: Worker) -> None:
    result = tasks.retry_once.delay()
    queued_again = wait_for(result, lambda s: s.is_queued and s.get("attempts") == 1)
    assert queued_again["exception"]["class"] == "ConnectionError"
    s = finished(result)
    assert s.is_completed and s["attempts"] == 2
    assert result.get(timeout=TIMEOUT) == 1


def test_failure_after_the_last_retry_is_failed(worker: Worker) -> None:
    result = tasks.always_retry.delay()
    s = finished(result)
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"] == {"class": "ValueError", "message": "attempt 2"}


def test_ignored_task_is_completed(worker: Worker) -> None:
    s = finished(tasks.ignored.delay())
    assert s.is_completed


def test_rejected_task_is_failed(worker: Worker) -> None:
    s = finished(tasks.rejected.delay())
    assert s.is_failed and s["exception"]["class"] == "celery.exceptions.Reject"


def test_rejected_and_requeued_task_runs_again(worker: Worker) -> None:
    result = tasks.requeued_once.delay(unique("count"))
    s = finished(result)
    assert s.is_completed and s["attempts"] == 2


def test_requeue_of_an_acknowledged_message_is_failed(worker: Worker) -> None:
    s = finished(tasks.requeue_too_late.delay())
    assert s.is_failed and s["exception"]["class"] == "celery.exceptions.Reject"


def test_soft_time_limit_is_failed(worker: Worker) -> None:
    s = finished(tasks.soft_limit.delay())
    assert s.is_failed
    assert s["exception"]["class"] == "billiard.exceptions.SoftTimeLimitExceeded"


def test_revoked_before_it_runs_is_failed(worker: Worker) -> None:
    task_id = unique("revoked")
    tasks.app.control.revoke(task_id, reply=True, timeout=5)
    tasks.add.apply_async((1, 1), task_id=task_id)
    s = finished(task_id)
    assert s.is_failed
    assert s["exception"] == {"class": "celery.exceptions.TaskRevokedError", "message": "revoked"}


def test_revoked_and_terminated_while_running_is_failed(worker: Worker) -> None:
    gate = unique("gate")
    result = tasks.gated.delay(gate, 3)
    wait_for(result, lambda s: s.is_working)
    result.revoke(terminate=True)
    s = finished(result)
    # The worker's main process (revoked, terminated) and the dying child race to
    # say why; which exception wins depends on the Celery version and timing.
    assert s.is_failed and "exception" in s


def test_expired_before_it_runs_is_failed(worker: Worker) -> None:
    result = tasks.add.apply_async((1, 1), expires=-1)
    s = finished(result)
    assert s.is_failed and s["exception"]["message"] == "expired"


def test_hard_time_limit_is_failed(worker: Worker) -> None:
    result = tasks.too_slow.delay()
    s = finished(result)
    assert s.is_failed
    assert s["exception"]["class"] == "billiard.exceptions.TimeLimitExceeded"


def test_killed_worker_child_is_failed(worker: Worker) -> None:
    result = tasks.killed.delay()
    s = finished(result)
    assert s.is_failed
    assert s["exception"]["class"] == "billiard.exceptions.WorkerLostError"


def test_unknown_task_is_failed(worker: Worker) -> None:
    result = tasks.app.send_task("celery_tasks.no_such_task")
    assert jobstatus.get(result).is_queued
    s = finished(result)
    assert s.is_failed


def test_swallowed_exception_with_catch_exception_stays_failed(worker: Worker) -> None:
    result = tasks.swallow.delay()
    assert result.get(timeout=TIMEOUT) == "handled"
    s = finished(result)
    assert s.is_failed
    assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}


def test_task_opted_out_is_not_recorded(worker: Worker) -> None:
    result = tasks.untracked.delay()
    assert result.get(timeout=TIMEOUT) == 1
    assert not jobstatus.get(result).exists


def test_per_task_options_apply(worker: Worker) -> None:
    result = tasks.expiring.delay()
    s = finished(result)
    assert s.is_completed
    assert "serialized_job" not in s  # the task's includes replace the app's


def test_worker_records_jobs_from_a_publisher_without_jobstatus(worker: Worker) -> None:
    script = (
        "import sys; from celery import Celery\n"
        "app = Celery(broker=sys.argv[1])\n"
        "for name, args in (('celery_tasks.add', [1, 2]), ('celery_tasks.fail', ['plain'])):\n"
        "    print(app.send_task(name, args=args, queue=sys.argv[2]).id)\n"
    )
    out = subprocess.run(
        [python(), "-c", script, worker.broker, worker.queue],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    completed, failed = finished(out[0]), finished(out[1])
    assert completed.is_completed and "queued_at" not in completed
    assert failed.is_failed and failed["exception"]["message"] == "plain"


def test_worker_log_has_no_jobstatus_warnings(worker: Worker) -> None:
    wait_until(lambda: worker.log.exists(), "the worker log")
    assert "jobstatus could not" not in worker.log.read_text()
