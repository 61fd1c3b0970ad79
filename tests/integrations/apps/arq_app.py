"""The arq worker settings the integration tests run in a real worker (``python -m arq``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import _gate
import _worker_options
from arq import Retry, func
from arq.connections import RedisSettings

import jobstatus
from jobstatus.integrations.arq import options, track

BROKER = os.environ.get("JOBSTATUS_TEST_ARQ_REDIS", "redis://127.0.0.1:6379/7")
QUEUE = os.environ.get("JOBSTATUS_TEST_ARQ_QUEUE", "jobstatus-test:arq")
DECLARED_GROUP = "jobstatus-test-arq-declared-group"  # made by the test before it publishes
_worker_options.configure_from_env()  # the killed-worker tests beat fast


async def add(ctx: dict[str, Any], x: int, y: int) -> int:
    return x + y


@options(throttle_interval=3600)
async def gated(ctx: dict[str, Any], gate: str, steps: int) -> str:
    """Write progress and a key, wait at the gate, then make throttled (held) progress."""
    status = jobstatus.current()
    status.progress.total = steps
    status.progress.current = 1
    status["step"] = "waiting"
    await _gate.await_gate(gate)  # ticks: a cancel request raises Cancelled here
    for _ in range(steps - 1):
        status.progress.increment()
    status.update(step="done")  # throttled: held until the end
    return "released"


async def fail(ctx: dict[str, Any], message: str) -> None:
    raise ValueError(message)


async def retry_once(ctx: dict[str, Any], marker: str, gate: str) -> int:
    """The first try waits at the gate, then asks for a retry 1.5 s later."""
    if ctx["job_try"] == 1:
        await _gate.await_gate(gate)
        raise Retry(defer=1.5)
    return int(ctx["job_try"])


async def always_fail(ctx: dict[str, Any]) -> None:
    raise Retry(defer=0.1)


async def too_slow(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(30)


async def swallow(ctx: dict[str, Any]) -> str:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@options(False)
async def untracked(ctx: dict[str, Any], gate: str) -> int:
    await _gate.aopen_gate(gate)
    return 1


@options(includes={"status"})
async def plain_record(ctx: dict[str, Any]) -> int:
    return 2


async def noop(ctx: dict[str, Any]) -> None:
    return None


@options(parent=DECLARED_GROUP)
async def in_declared_group(ctx: dict[str, Any]) -> int:
    return 1


async def opens(ctx: dict[str, Any], gate: str) -> str:
    """A side effect a test can see: the gate opens (so a cancelled job must not run it)."""
    await _gate.aopen_gate(gate)
    return "ran"


class WorkerSettings:
    functions = [
        add, gated, fail, retry_once, swallow, untracked, plain_record, noop,
        in_declared_group, opens,
        func(always_fail, max_tries=2),
        func(too_slow, timeout=0.5),
    ]  # fmt: skip
    redis_settings = RedisSettings.from_dsn(BROKER)
    queue_name = QUEUE
    allow_abort_jobs = True
    poll_delay = float(os.environ.get("JOBSTATUS_TEST_ARQ_POLL_DELAY", "0.05"))
    max_jobs = 4
    keep_result = 300


if os.environ.get("JOBSTATUS_TEST_ARQ_PLAIN") != "1":  # the benchmark's baseline runs without
    track(WorkerSettings, includes={"status", "exception", "serialized_job"})
