"""The arq worker settings the integration tests run in a real worker (``python -m arq``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import _gate
import _worker_options
import redis.asyncio
from arq import Retry, func
from arq.connections import RedisSettings

import jobstatus
from jobstatus.integrations.arq import options, track

GATE_REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER = os.environ.get("JOBSTATUS_TEST_ARQ_REDIS", "redis://127.0.0.1:6379/7")
QUEUE = os.environ.get("JOBSTATUS_TEST_ARQ_QUEUE", "jobstatus-test:arq")
DECLARED_GROUP = "jobstatus-test-arq-declared-group"  # made by the test before it publishes
_worker_options.configure_from_env()  # the killed-worker tests beat fast


async def wait_at_gate(name: str, timeout: float = 60.0) -> None:
    """Wait (without blocking the loop) until the test opens the gate (see ``_gate``),
    ticking (``_gate.tick``): in a job, a cancel request raises Cancelled here."""
    client = redis.asyncio.Redis.from_url(GATE_REDIS_URL)
    try:
        for waited in range(int(timeout / 0.02)):
            if await client.exists(f"jobstatus-test:gate:{name}"):
                return
            if waited % 10 == 0:  # every 0.2 s: an unthrottled job writes at each tick
                _gate.tick()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"gate {name!r} was never opened")
    finally:
        await client.aclose()


async def open_gate(name: str) -> None:
    """Open a gate (as ``_gate.open_gate``), without blocking the loop."""
    client = redis.asyncio.Redis.from_url(GATE_REDIS_URL)
    try:
        await client.set(f"jobstatus-test:gate:{name}", 1, ex=120)
    finally:
        await client.aclose()


async def add(ctx: dict[str, Any], x: int, y: int) -> int:
    return x + y


@options(throttle_interval=3600)
async def gated(ctx: dict[str, Any], gate: str, steps: int) -> str:
    """Write progress and a key, wait at the gate, then make throttled (held) progress."""
    status = jobstatus.current()
    status.progress.total = steps
    status.progress.current = 1
    status["step"] = "waiting"
    await wait_at_gate(gate)  # ticks: a cancel request raises Cancelled here
    for _ in range(steps - 1):
        status.progress.increment()
    status.update(step="done")  # throttled: held until the end
    return "released"


async def fail(ctx: dict[str, Any], message: str) -> None:
    raise ValueError(message)


async def retry_once(ctx: dict[str, Any], marker: str, gate: str) -> int:
    """The first try waits at the gate, then asks for a retry 1.5 s later."""
    if ctx["job_try"] == 1:
        await wait_at_gate(gate)
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
    await open_gate(gate)
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
    await open_gate(gate)
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
