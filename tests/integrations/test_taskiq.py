"""Taskiq with a real worker subprocess on taskiq-redis; statuses in SQLite, then in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import jobstatus

from ._stores import STORE_RUNS, store_url
from ._support import (
    APPS,
    TASKIQ_REDIS_DB,
    TIMEOUT,
    Worker,
    afinished,
    await_status,
    python,
    redis_url,
    require_redis,
    start,
    stop,
    unique,
    worker_env,
)
from ._teardown import purge_store

pytest.importorskip("taskiq_redis")
sys.path.insert(0, str(APPS))
# The broker this process sends with is the worker's: the Redis under test, not the
# app's default (localhost:6379), which is another server when the tests run elsewhere.
os.environ.setdefault("JOBSTATUS_TEST_TASKIQ_REDIS", redis_url(TASKIQ_REDIS_DB))

import _gate  # noqa: E402
import taskiq_app as tasks  # noqa: E402

pytestmark = [pytest.mark.taskiq, pytest.mark.timeout(120)]

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run an async scenario with the client side of the broker started."""

    async def main() -> T:
        await tasks.broker.startup()
        try:
            return await scenario()
        finally:
            await tasks.broker.shutdown()

    return asyncio.run(main())


async def result_of(job: Any) -> Any:
    result = await job.wait_result(timeout=TIMEOUT)
    return result.return_value


def _point_broker_at(queue: str) -> None:
    """The test process's broker sends to this run's queue (the worker gets it by env)."""
    tasks.broker.queue_name = queue
    tasks.broker.result_backend.prefix_str = queue


@pytest.fixture(scope="module", params=STORE_RUNS)
def worker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    require_redis()
    folder = tmp_path_factory.mktemp("taskiq")
    url = store_url(request.param, folder)
    queue = unique("jobstatus-taskiq")
    _point_broker_at(queue)
    log = folder / "worker.log"
    env = worker_env(
        url,
        JOBSTATUS_TEST_TASKIQ_REDIS=redis_url(TASKIQ_REDIS_DB),
        JOBSTATUS_TEST_TASKIQ_QUEUE=queue,
    )
    command = [
        python(), "-m", "taskiq", "worker", "taskiq_app:broker",
        "--workers", "1", "--max-async-tasks", "1", "--shutdown-timeout", "2",
        "--wait-tasks-timeout", "1",
    ]  # fmt: skip
    process = start(command, env, log)
    try:
        jobstatus.configure(store=url)

        async def ready() -> None:
            job = await tasks.add.kiq(1, 2)
            assert await result_of(job) == 3, log.read_text()

        run(ready)
        yield Worker(url, queue, log)
    finally:
        _kill(process)
        _purge(queue)
        purge_store(url)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Stop the worker: its main process does not exit on SIGTERM or SIGINT (taskiq 0.12)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    stop(process)


def _purge(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url(TASKIQ_REDIS_DB))
    try:
        client.delete(queue, *client.scan_iter(match=f"{queue}:*", count=1000))
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _worker_store(worker: Worker) -> None:
    jobstatus.configure(store=worker.store_url)


def test_queued_then_working_with_progress_then_completed(worker: Worker) -> None:
    async def scenario() -> None:
        gate = unique("gate")
        job = await tasks.gated.kiq(gate, 5)
        s = await await_status(job, lambda s: s.is_working and s.get("step") == "waiting")
        assert s["queued_at"] <= s["started_at"]
        assert s.progress.current == 1 and s.progress.total == 5
        assert s["attempts"] == 1
        assert s["serialized_job"]["name"] == "gated"
        assert s["serialized_job"]["args"] == [gate, 5]
        assert s["serialized_job"]["queue"] == worker.queue
        _gate.open_gate(gate)
        assert await result_of(job) == "released"
        done = await jobstatus.aget(job)  # recorded before the result is stored
        assert done.is_completed, done.to_dict()
        assert done.progress.current == 5 and done.progress.percent == 100
        assert done["step"] == "done"  # a throttled change, held until the end
        assert "finished_at" in done
        _gate.close(gate)

    run(scenario)


def test_queued_is_recorded_before_sending(worker: Worker) -> None:
    async def scenario() -> None:
        gate = unique("gate")
        busy = await tasks.gated.kiq(gate, 1)  # the worker's one slot is taken
        await await_status(busy, lambda s: s.is_working)
        job = await tasks.add.kiq(2, 2)
        s = await jobstatus.aget(job)
        assert s.is_queued and "queued_at" in s and "attempts" not in s
        assert s.job_id == job.task_id
        _gate.open_gate(gate)
        assert (await afinished(job)).is_completed
        _gate.close(gate)

    run(scenario)


def test_sync_task_runs_in_a_thread_as_the_job(worker: Worker) -> None:
    async def scenario() -> None:
        job = await tasks.sync_add.kiq(20, 22)
        assert await result_of(job) == 42
        s = await afinished(job)
        assert s.is_completed and s["thread"] is True

    run(scenario)


def test_failure_records_the_exception(worker: Worker) -> None:
    async def scenario() -> None:
        s = await afinished(await tasks.fail.kiq("no such row"))
        assert s.is_failed
        assert s["exception"] == {"class": "ValueError", "message": "no such row"}

    run(scenario)


def test_retry_goes_back_to_queued_and_counts_attempts(worker: Worker) -> None:
    async def scenario() -> None:
        job = await tasks.retry_once.kiq(unique("once"))
        await await_status(job, lambda s: s.is_working)
        gate = unique("gate")
        busy = await tasks.gated.kiq(gate, 1)  # runs before the retry: the retry waits
        queued_again = await await_status(job, lambda s: s.is_queued and s.get("attempts") == 1)
        assert queued_again["exception"]["class"] == "ConnectionError"
        _gate.open_gate(gate)
        s = await afinished(job)
        assert s.is_completed and s["attempts"] == 2
        assert await result_of(job) == "second try"
        assert (await afinished(busy)).is_completed
        _gate.close(gate)

    run(scenario)


def test_failure_after_the_last_retry_is_failed(worker: Worker) -> None:
    async def scenario() -> None:
        s = await afinished(await tasks.always_fail.kiq())
        assert s.is_failed and s["attempts"] == 2
        assert s["exception"] == {"class": "ValueError", "message": "always"}

    run(scenario)


def test_timeout_is_failed(worker: Worker) -> None:
    async def scenario() -> None:
        s = await afinished(await tasks.too_slow.kiq())
        assert s.is_failed and s["exception"]["class"] == "TimeoutError"

    run(scenario)


def test_no_result_error_is_completed(worker: Worker) -> None:
    async def scenario() -> None:
        s = await afinished(await tasks.no_result.kiq())
        assert s.is_completed and "exception" not in s

    run(scenario)


def test_swallowed_exception_with_catch_exception_stays_failed(worker: Worker) -> None:
    async def scenario() -> None:
        job = await tasks.swallow.kiq()
        assert await result_of(job) == "handled"
        s = await afinished(job)
        assert s.is_failed
        assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}

    run(scenario)


def test_task_opted_out_is_not_recorded(worker: Worker) -> None:
    async def scenario() -> None:
        job = await tasks.untracked.kiq()
        assert await result_of(job) == 1
        assert not (await jobstatus.aget(job)).exists

    run(scenario)


def test_per_task_options_apply(worker: Worker) -> None:
    async def scenario() -> None:
        s = await afinished(await tasks.plain_record.kiq())
        assert s.is_completed
        assert "serialized_job" not in s  # the task's includes replace the middleware's

    run(scenario)


def test_worker_log_has_no_jobstatus_warnings(worker: Worker) -> None:
    assert "jobstatus could not" not in worker.log.read_text()
