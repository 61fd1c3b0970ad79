"""Dramatiq with a real worker subprocess, on Redis and RabbitMQ brokers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobstatus

from ._stores import store_url, stores_for_second_run
from ._support import (
    APPS,
    DRAMATIQ_REDIS_DB,
    RABBITMQ_URL,
    finished,
    pika_url,
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

pytest.importorskip("dramatiq")
sys.path.insert(0, str(APPS))
QUEUE = os.environ.setdefault("JOBSTATUS_TEST_DRAMATIQ_QUEUE", unique("jobstatus-dramatiq"))

import _gate  # noqa: E402
import dramatiq  # noqa: E402
import dramatiq_tasks as tasks  # noqa: E402

pytestmark = [pytest.mark.dramatiq, pytest.mark.timeout(180)]

ACTORS = [
    tasks.add,
    tasks.fail,
    tasks.gated,
    tasks.fail_once,
    tasks.always_fail,
    tasks.throws,
    tasks.too_slow,
    tasks.swallow,
    tasks.untracked,
    tasks.minimal,
]
SECOND_STORE = stores_for_second_run()


@dataclass
class Worker:
    store_url: str
    broker_url: str
    broker: dramatiq.Broker
    log: Path

    def send(self, actor: dramatiq.Actor[Any, Any], *args: Any, **options: Any) -> Any:
        """Send through this run's broker (the actors were declared on another)."""
        message = actor.message_with_options(args=args, **options)
        return self.broker.enqueue(message)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("redis", "sqlite"), id="redis-broker-sqlite-store"),
        pytest.param(("amqp", SECOND_STORE), id=f"rabbitmq-broker-{SECOND_STORE}-store"),
    ],
)
def worker(
    request: pytest.FixtureRequest,
) -> Iterator[Worker]:
    broker_kind, store_kind = request.param
    require_redis()
    if broker_kind == "amqp":
        require_rabbitmq()
    broker_url = pika_url(RABBITMQ_URL) if broker_kind == "amqp" else redis_url(DRAMATIQ_REDIS_DB)
    with scratch_dir("dramatiq") as folder:
        url = store_url(store_kind, folder)
        broker = tasks.make_broker(broker_url)
        for actor in ACTORS:
            broker.declare_actor(actor)
        log = folder / "worker.log"
        env = worker_env(url, JOBSTATUS_TEST_DRAMATIQ_BROKER=broker_url)
        command = [python(), "-m", "dramatiq", "dramatiq_tasks", "-p", "1", "-t", "2", "-Q", QUEUE]
        process = start(command, env, log)
        running = Worker(url, broker_url, broker, log)
        try:
            jobstatus.configure(store=url)
            finished(running.send(tasks.add, 1, 2), timeout=60)
            yield running
        finally:
            stop(process)
            _flush(broker, broker_kind)


def _flush(broker: dramatiq.Broker, kind: str) -> None:
    with contextlib.suppress(Exception):
        broker.flush_all()
    if kind == "amqp":
        for name in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
            with contextlib.suppress(Exception):
                broker.channel.queue_delete(name)
    broker.close()


@pytest.fixture(autouse=True)
def _worker_store(worker: Worker) -> None:
    jobstatus.configure(store=worker.store_url)


def test_queued_then_working_then_completed_with_progress(worker: Worker) -> None:
    gate = unique("gate")
    message = worker.send(tasks.gated, gate, 5)
    s = wait_for(message, lambda s: s.is_working and s.get("step") == "waiting")
    assert s["queued_at"] <= s["started_at"] and s["attempts"] == 1
    assert s.progress.current == 1 and s.progress.total == 5
    assert s["serialized_job"]["name"] == "gated"
    assert s["serialized_job"]["args"] == [gate, 5]
    _gate.open_gate(gate)
    done = finished(message)
    assert done.is_completed
    assert done.progress.current == 5 and done["step"] == "done"  # held, flushed at the end


def test_queued_is_recorded_when_sent(worker: Worker) -> None:
    message = worker.send(tasks.add, 1, 1, delay=300_000)
    s = jobstatus.get(message)
    assert s.is_queued and "attempts" not in s


def test_failure_records_the_exception(worker: Worker) -> None:
    s = finished(worker.send(tasks.fail, "no such row"))
    assert s.is_failed
    assert s["exception"] == {"class": "ValueError", "message": "no such row"}


def test_retry_goes_back_to_queued_and_counts_attempts(worker: Worker) -> None:
    message = worker.send(tasks.fail_once, unique("count"))
    queued_again = wait_for(message, lambda s: s.is_queued and s.get("attempts") == 1)
    assert queued_again["exception"]["class"] == "ConnectionError"
    s = finished(message)
    assert s.is_completed and s["attempts"] == 2


def test_failure_after_the_last_retry_is_failed(worker: Worker) -> None:
    s = finished(worker.send(tasks.always_fail))
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"]["message"] == "every time"


def test_exception_in_throws_fails_without_retry(worker: Worker) -> None:
    s = finished(worker.send(tasks.throws))
    assert s.is_failed and s["attempts"] == 1
    assert s["exception"]["class"] == "KeyError"


def test_time_limit_is_failed(worker: Worker) -> None:
    s = finished(worker.send(tasks.too_slow))
    assert s.is_failed
    assert s["exception"]["class"] == "dramatiq.middleware.time_limit.TimeLimitExceeded"


def test_message_skipped_by_the_age_limit_is_failed(worker: Worker) -> None:
    s = finished(worker.send(tasks.add, 1, 1, max_age=1))
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.dramatiq.MessageSkipped"


def test_swallowed_exception_with_catch_exception_stays_failed(worker: Worker) -> None:
    s = finished(worker.send(tasks.swallow))
    assert s.is_failed
    assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}


def test_actor_opted_out_is_not_recorded(worker: Worker) -> None:
    gate = unique("untracked")
    message = worker.send(tasks.untracked, gate)
    wait_until(lambda: _gate.is_open(gate), "the untracked actor to run")
    assert not jobstatus.get(message).exists


def test_per_actor_options_apply(worker: Worker) -> None:
    s = finished(worker.send(tasks.minimal))
    assert s.is_completed and "serialized_job" not in s


def test_worker_records_messages_from_a_publisher_without_jobstatus(worker: Worker) -> None:
    script = (
        "import sys\n"
        "from dramatiq import Message\n"
        "from dramatiq.brokers.rabbitmq import RabbitmqBroker\n"
        "from dramatiq.brokers.redis import RedisBroker\n"
        "url, queue = sys.argv[1], sys.argv[2]\n"
        "broker = RabbitmqBroker(url=url) if url.startswith('amqp') else RedisBroker(url=url)\n"
        "broker.declare_queue(queue)\n"
        "for name, args in (('add', (1, 2)), ('fail', ('plain',))):\n"
        "    message = Message(queue_name=queue, actor_name=name, args=args, kwargs={},\n"
        "                      options={})\n"
        "    print(broker.enqueue(message).message_id)\n"
    )
    out = subprocess.run(
        [python(), "-c", script, worker.broker_url, QUEUE],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    completed, failed = finished(out[0]), finished(out[1])
    assert completed.is_completed and "queued_at" not in completed
    assert failed.is_failed and failed["exception"]["message"] == "plain"


def test_worker_log_has_no_jobstatus_warnings(worker: Worker) -> None:
    log = worker.log.read_text()
    assert "jobstatus could not" not in log
    assert "Unexpected failure" not in log  # a middleware hook that raised
