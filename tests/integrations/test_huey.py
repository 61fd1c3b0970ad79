"""Huey with a real consumer subprocess: RedisHuey, then SqliteHuey."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import jobstatus

from ._stores import store_url, stores_for_second_run
from ._support import (
    APPS,
    HUEY_REDIS_DB,
    TIMEOUT,
    finished,
    python,
    redis_url,
    require_redis,
    start,
    stop,
    unique,
    wait_for,
    wait_until,
    worker_env,
)
from ._teardown import purge_store

pytest.importorskip("huey")
sys.path.insert(0, str(APPS))

import _gate  # noqa: E402
import huey_app as tasks  # noqa: E402
from huey.exceptions import ResultTimeout  # noqa: E402
from huey.storage import RedisStorage, SqliteStorage  # noqa: E402

pytestmark = [pytest.mark.huey, pytest.mark.timeout(120)]

RUNS = [
    pytest.param(("redis", "sqlite"), id="redis-huey-sqlite-store"),
    pytest.param(
        ("sqlite", stores_for_second_run()), id=f"sqlite-huey-{stores_for_second_run()}-store"
    ),
]


@dataclass
class Consumer:
    store_url: str
    log: Path


@pytest.fixture(scope="module", params=RUNS)
def consumer(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Consumer]:
    kind, store_kind = request.param
    require_redis()  # the gate, and RedisHuey
    folder = tmp_path_factory.mktemp("huey")
    url = store_url(store_kind, folder)
    name = unique("jobstatus-huey")
    huey_file = str(folder / "huey.db")
    tasks.huey.name = name
    tasks.huey.storage = (
        SqliteStorage(name, filename=huey_file)
        if kind == "sqlite"
        else RedisStorage(name, url=redis_url(HUEY_REDIS_DB), notify_result=True)
    )
    env = worker_env(
        url,
        JOBSTATUS_TEST_HUEY_KIND=kind,
        JOBSTATUS_TEST_HUEY_NAME=name,
        JOBSTATUS_TEST_HUEY_FILE=huey_file,
        JOBSTATUS_TEST_HUEY_REDIS=redis_url(HUEY_REDIS_DB),
    )
    log = folder / "consumer.log"
    command = [
        python(), "-m", "huey.bin.huey_consumer", "huey_app.huey",
        "-w", "2", "-k", "thread", "-s", "1", "-d", "0.05",
    ]  # fmt: skip
    process = start(command, env, log)
    try:
        jobstatus.configure(store=url)
        _wait_until_ready(process, log)
        yield Consumer(url, log)
    finally:
        stop(process)
        tasks.huey.storage.flush_all()
        _delete_notifications(kind)
        purge_store(url)


def _delete_notifications(kind: str) -> None:
    """RedisHuey's result notifications of results nobody waited for (flush_all keeps them)."""
    if kind != "redis":
        return
    storage = tasks.huey.storage
    client = storage.conn
    keys = list(client.scan_iter(match=f"{storage.notify_prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def _wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    result = tasks.add(1, 2)
    for _ in range(60):
        if process.poll() is not None:
            raise AssertionError(f"the consumer exited:\n{log.read_text()}")
        try:
            assert result.get(blocking=True, timeout=1) == 3
            return
        except ResultTimeout:
            continue
    raise AssertionError(f"the consumer did not run a task:\n{log.read_text()}")


@pytest.fixture(autouse=True)
def _consumer_store(consumer: Consumer) -> None:
    jobstatus.configure(store=consumer.store_url)


def test_queued_then_working_with_progress_then_completed(consumer: Consumer) -> None:
    gate = unique("gate")
    result = tasks.gated(gate, 5)
    s = wait_for(result, lambda s: s.is_working and s.get("step") == "waiting")
    assert s["queued_at"] <= s["started_at"]
    assert s.progress.current == 1 and s.progress.total == 5
    assert s["attempts"] == 1
    assert s["serialized_job"]["name"] == "huey_app.gated"
    assert s["serialized_job"]["args"] == [gate, 5]
    _gate.open_gate(gate)
    assert result.get(blocking=True, timeout=TIMEOUT) == "released"
    done = finished(result)
    assert done.is_completed, done.to_dict()
    assert done.progress.current == 5 and done.progress.percent == 100
    assert done["step"] == "done"  # a throttled change, held until the end
    assert "finished_at" in done
    _gate.close(gate)


def test_queued_is_recorded_when_enqueued(consumer: Consumer) -> None:
    result = tasks.add.schedule((2, 2), delay=60)
    s = jobstatus.get(result)
    assert s.is_queued and "queued_at" in s and "attempts" not in s
    assert s.job_id == result.id
    result.revoke()


def test_failure_records_the_exception(consumer: Consumer) -> None:
    result = tasks.fail("no such row")
    s = finished(result)
    assert s.is_failed
    assert s["exception"] == {"class": "ValueError", "message": "no such row"}


def test_retry_goes_back_to_queued_and_counts_attempts(consumer: Consumer) -> None:
    result = tasks.retry_once(unique("once"))
    queued_again = wait_for(result, lambda s: s.is_queued and s.get("attempts") == 1)
    assert queued_again["exception"]["class"] == "ConnectionError"
    s = finished(result)
    assert s.is_completed and s["attempts"] == 2
    assert result.get(blocking=True, timeout=TIMEOUT) == "second try"


def test_failure_after_the_last_retry_is_failed(consumer: Consumer) -> None:
    s = finished(tasks.always_fail())
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"] == {"class": "ValueError", "message": "always"}


def test_revoked_before_it_runs_is_failed(consumer: Consumer) -> None:
    result = tasks.add.schedule((1, 1), delay=0.5)
    result.revoke()
    s = finished(result)
    assert s.is_failed and "attempts" not in s
    assert s["exception"] == {
        "class": "jobstatus.integrations.huey.TaskRevoked",
        "message": "revoked",
    }


def test_expired_before_it_runs_is_failed(consumer: Consumer) -> None:
    gates = [unique("gate"), unique("gate")]
    busy = [tasks.gated(gate, 1) for gate in gates]  # both workers wait at a gate
    for result in busy:
        wait_for(result, lambda s: s.is_working)
    result = tasks.huey.enqueue(tasks.add.s(1, 1, expires=0.2))
    wait_until(lambda: jobstatus.get(result).is_queued, "queued")
    time.sleep(0.5)  # it expires while waiting in the queue
    for gate in gates:
        _gate.open_gate(gate)
    s = finished(result)
    for gate in gates:
        _gate.close(gate)
    assert s.is_failed and "attempts" not in s
    assert s["exception"]["class"] == "jobstatus.integrations.huey.TaskExpired"


def test_cancelled_by_a_pre_execute_hook_is_failed(consumer: Consumer) -> None:
    s = finished(tasks.cancelled_by_hook())
    assert s.is_failed
    assert s["exception"] == {"class": "huey.exceptions.CancelExecution", "message": "not today"}


def test_cancel_execution_without_retry_is_failed(consumer: Consumer) -> None:
    s = finished(tasks.cancel_itself())
    assert s.is_failed and s["attempts"] == 1
    assert s["exception"]["message"] == "given up"


def test_task_whose_lock_is_held_is_failed(consumer: Consumer) -> None:
    lock = tasks.huey.lock_task("jobstatus-test-lock")
    lock.acquire()  # held here, so the task cannot take it
    try:
        s = finished(tasks.locked())
    finally:
        lock.clear()
    assert s.is_failed
    assert s["exception"]["class"] == "huey.exceptions.TaskLockedException"


def test_swallowed_exception_with_catch_exception_stays_failed(consumer: Consumer) -> None:
    result = tasks.swallow()
    assert result.get(blocking=True, timeout=TIMEOUT) == "handled"
    s = finished(result)
    assert s.is_failed
    assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}


def test_task_opted_out_is_not_recorded(consumer: Consumer) -> None:
    result = tasks.untracked()
    assert result.get(blocking=True, timeout=TIMEOUT) == 1
    assert not jobstatus.get(result).exists


def test_per_task_options_apply(consumer: Consumer) -> None:
    s = finished(tasks.plain_record())
    assert s.is_completed
    assert "serialized_job" not in s  # the task's includes replace the instance's


def test_consumer_log_has_no_jobstatus_warnings(consumer: Consumer) -> None:
    log = consumer.log.read_text()
    assert "jobstatus could not" not in log
    assert "Error occurred in receiver" not in log
