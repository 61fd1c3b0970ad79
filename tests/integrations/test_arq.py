"""arq with a real worker subprocess on Redis; statuses in SQLite, then in Redis."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

import jobstatus

from ._stores import STORE_RUNS, store_url
from ._support import (
    APPS,
    ARQ_REDIS_DB,
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

pytest.importorskip("arq")
sys.path.insert(0, str(APPS))

import _gate  # noqa: E402
from arq import create_pool  # noqa: E402
from arq.connections import ArqRedis, RedisSettings  # noqa: E402
from arq.constants import job_key_prefix, result_key_prefix, retry_key_prefix  # noqa: E402

from jobstatus.integrations.arq import enqueue_job  # noqa: E402

pytestmark = [pytest.mark.arq, pytest.mark.timeout(120)]

T = TypeVar("T")
# arq raises asyncio.TimeoutError: the builtin from Python 3.11, its own class before.
TIMEOUT_ERROR = "TimeoutError" if sys.version_info >= (3, 11) else "asyncio.exceptions.TimeoutError"


def run(scenario: Callable[[ArqRedis], Awaitable[T]], worker: Worker) -> T:
    """Run an async scenario with an arq pool on the worker's queue."""

    async def main() -> T:
        settings = RedisSettings.from_dsn(redis_url(ARQ_REDIS_DB))
        pool = await create_pool(settings, default_queue_name=worker.queue)
        try:
            return await scenario(pool)
        finally:
            await pool.aclose()

    return asyncio.run(main())


@pytest.fixture(scope="module", params=STORE_RUNS)
def worker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    require_redis()
    folder = tmp_path_factory.mktemp("arq")
    url = store_url(request.param, folder)
    queue = unique("jobstatus-arq")
    log = folder / "worker.log"
    env = worker_env(
        url, JOBSTATUS_TEST_ARQ_REDIS=redis_url(ARQ_REDIS_DB), JOBSTATUS_TEST_ARQ_QUEUE=queue
    )
    process = start([python(), "-m", "arq", "arq_app.WorkerSettings"], env, log)
    worker = Worker(url, queue, log)
    try:
        jobstatus.configure(store=url)

        async def ready(pool: ArqRedis) -> None:
            job = await pool.enqueue_job("add", 1, 2)
            assert job is not None
            assert await job.result(timeout=60) == 3, log.read_text()

        run(ready, worker)
        yield worker
    finally:
        stop(process)
        run(_purge_queue, worker)
        purge_store(url)


async def _purge_queue(pool: ArqRedis) -> None:
    """Remove what the run left in arq's Redis database (its queue and its jobs)."""
    queue = pool.default_queue_name
    ids = [raw.decode() for raw in await pool.zrange(queue, 0, -1)]
    async for key in pool.scan_iter(match=f"{result_key_prefix}*"):
        ids.append(key.decode().removeprefix(result_key_prefix))
    keys = [prefix + job_id for job_id in ids for prefix in (job_key_prefix, retry_key_prefix)]
    await pool.delete(queue, *keys, *(result_key_prefix + job_id for job_id in ids))


@pytest.fixture(autouse=True)
def _worker_store(worker: Worker) -> None:
    jobstatus.configure(store=worker.store_url)


def test_queued_then_working_with_progress_then_completed(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        gate = unique("gate")
        job = await enqueue_job(pool, "gated", gate, 5)
        s = await await_status(job, lambda s: s.is_working and s.get("step") == "waiting")
        assert s["queued_at"] <= s["started_at"]
        assert s.progress.current == 1 and s.progress.total == 5
        assert s["attempts"] == 1
        assert s["serialized_job"]["name"] == "gated"
        assert s["serialized_job"]["args"] == [gate, 5]
        assert s["serialized_job"]["queue"] == worker.queue
        _gate.open_gate(gate)
        assert await job.result(timeout=TIMEOUT) == "released"
        done = await jobstatus.aget(job)  # recorded before arq stores the result
        assert done.is_completed, done.to_dict()
        assert done.progress.current == 5 and done.progress.percent == 100
        assert done["step"] == "done"  # a throttled change, held until the end
        assert "finished_at" in done
        _gate.close(gate)

    run(scenario, worker)


def test_queued_is_recorded_before_enqueueing(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await enqueue_job(pool, "add", 2, 2, _defer_by=60)
        assert job is not None
        s = await jobstatus.aget(job)
        assert s.is_queued and "queued_at" in s and "attempts" not in s
        assert s.job_id == job.job_id

    run(scenario, worker)


def test_failure_records_the_exception(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await enqueue_job(pool, "fail", "no such row")
        s = await afinished(job)
        assert s.is_failed
        assert s["exception"] == {"class": "ValueError", "message": "no such row"}

    run(scenario, worker)


def test_retry_goes_back_to_queued_and_counts_attempts(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await enqueue_job(pool, "retry_once")
        queued_again = await await_status(job, lambda s: s.is_queued and s.get("attempts") == 1)
        assert queued_again["exception"]["class"] == "arq.worker.Retry"
        s = await afinished(job)
        assert s.is_completed and s["attempts"] == 2
        assert await job.result(timeout=TIMEOUT) == 2

    run(scenario, worker)


def test_failure_after_the_last_retry_is_failed(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        s = await afinished(await enqueue_job(pool, "always_retry"))
        assert s.is_failed and s["attempts"] == 2
        assert s["exception"] == {
            "class": "arq.worker.JobExecutionFailed",
            "message": "max 2 retries exceeded",
        }

    run(scenario, worker)


def test_timeout_is_failed(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        s = await afinished(await enqueue_job(pool, "too_slow"))
        assert s.is_failed and s["exception"]["class"] == TIMEOUT_ERROR

    run(scenario, worker)


def test_aborted_while_running_is_failed(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await enqueue_job(pool, "gated", unique("gate"), 3)
        assert job is not None
        await await_status(job, lambda s: s.is_working)
        assert await job.abort(timeout=TIMEOUT, poll_delay=0.1)
        s = await afinished(job)
        assert s.is_failed and s["exception"]["class"] == "asyncio.exceptions.CancelledError"

    run(scenario, worker)


def test_swallowed_exception_with_catch_exception_stays_failed(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await enqueue_job(pool, "swallow")
        assert await job.result(timeout=TIMEOUT) == "handled"
        s = await afinished(job)
        assert s.is_failed
        assert s["exception"] == {"class": "KeyError", "message": "'missing row'"}

    run(scenario, worker)


def test_function_opted_out_is_not_recorded_by_the_worker(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await pool.enqueue_job("untracked")  # arq's own enqueue: no queued either
        assert job is not None
        assert await job.result(timeout=TIMEOUT) == 1
        assert not (await jobstatus.aget(job)).exists

    run(scenario, worker)


def test_jobs_enqueued_without_jobstatus_are_recorded_by_the_worker(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        job = await pool.enqueue_job("add", 20, 22)
        assert job is not None
        s = await afinished(job)
        assert s.is_completed and "queued_at" not in s and s["attempts"] == 1

    run(scenario, worker)


def test_per_function_options_apply(worker: Worker) -> None:
    async def scenario(pool: ArqRedis) -> None:
        s = await afinished(await enqueue_job(pool, "plain_record"))
        assert s.is_completed
        assert "serialized_job" not in s  # the function's includes replace the worker's

    run(scenario, worker)


def test_worker_log_has_no_jobstatus_warnings(worker: Worker) -> None:
    assert "jobstatus could not" not in worker.log.read_text()
