"""A worker stopped while a task runs: Huey reports it interrupted (failed), arq runs it
again (queued, then completed by the next worker).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

import jobstatus

from ._support import (
    APPS,
    finished,
    python,
    redis_url,
    require_redis,
    start,
    stop,
    unique,
    wait_for,
    worker_env,
)

sys.path.insert(0, str(APPS))

import _gate  # noqa: E402


@pytest.mark.huey
def test_huey_task_interrupted_by_a_consumer_stop_is_failed(tmp_path: Path) -> None:
    pytest.importorskip("huey")
    require_redis()
    import huey_app
    from huey import RedisHuey

    url = f"sqlite:///{tmp_path / 'status.db'}"
    jobstatus.configure(store=url)
    name, broker = unique("jobstatus-huey-stop"), redis_url(6)
    huey = RedisHuey(name, url=broker)
    env = worker_env(url, JOBSTATUS_TEST_HUEY_NAME=name, JOBSTATUS_TEST_HUEY_REDIS=broker)
    process = start(
        [python(), "-m", "huey.bin.huey_consumer", "huey_app.huey", "-w", "1"],
        env, tmp_path / "consumer.log",
    )  # fmt: skip
    try:
        storage, huey_app.huey.storage = huey_app.huey.storage, huey.storage
        try:
            result = huey_app.gated(unique("gate"), 2)
        finally:
            huey_app.huey.storage = storage
        wait_for(result, lambda s: s.is_working)
        os.killpg(process.pid, signal.SIGTERM)  # Huey's immediate (not graceful) stop
        s = finished(result)
        assert s.is_failed
        assert s["exception"]["class"] == "jobstatus.integrations.huey.TaskInterrupted"
    finally:
        stop(process)
        huey.storage.flush_all()


@pytest.mark.arq
def test_arq_job_cancelled_by_a_worker_shutdown_is_queued_then_run_again(tmp_path: Path) -> None:
    pytest.importorskip("arq")
    require_redis()
    from arq import create_pool
    from arq.connections import RedisSettings

    from jobstatus.integrations.arq import enqueue_job

    url = f"sqlite:///{tmp_path / 'status.db'}"
    jobstatus.configure(store=url)
    queue, broker = unique("jobstatus-arq-stop"), redis_url(7)
    env = worker_env(url, JOBSTATUS_TEST_ARQ_REDIS=broker, JOBSTATUS_TEST_ARQ_QUEUE=queue)
    command = [python(), "-m", "arq", "arq_app.WorkerSettings"]
    gate = unique("gate")

    async def enqueue() -> str:
        pool = await create_pool(RedisSettings.from_dsn(broker), default_queue_name=queue)
        try:
            job = await enqueue_job(pool, "gated", gate, 2)
            assert job is not None
            return job.job_id
        finally:
            await pool.aclose()

    job_id = asyncio.run(enqueue())
    first = start(command, env, tmp_path / "first.log")
    second = None
    try:
        wait_for(job_id, lambda s: s.is_working)
        os.killpg(first.pid, signal.SIGTERM)  # arq cancels the job and will run it again
        s = wait_for(job_id, lambda s: s.is_queued)
        assert s["attempts"] == 1
        first.wait(timeout=30)
        _gate.open_gate(gate)
        second = start(command, env, tmp_path / "second.log")
        done = finished(job_id)
        assert done.is_completed and done["attempts"] == 2
    finally:
        stop(first)
        if second is not None:
            stop(second)
        _gate.close(gate)

        async def purge() -> None:
            pool = await create_pool(RedisSettings.from_dsn(broker))
            await pool.delete(
                queue, f"arq:job:{job_id}", f"arq:retry:{job_id}", f"arq:result:{job_id}"
            )
            await pool.aclose()

        asyncio.run(purge())
