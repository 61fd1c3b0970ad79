"""A gate a task waits at until the test opens it (a Redis key).

A tracked task waiting at a gate ticks its progress (``tick``: a throttled
``increment(0)``, no I/O of its own), so a cancel request that reached its process
raises ``jobstatus.Cancelled`` there, as it would in a job's loop. An async app's
own gate calls ``tick()`` in its loop too.
"""

from __future__ import annotations

import asyncio
import os
import time

import redis
import redis.asyncio

import jobstatus

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_client = redis.Redis.from_url(REDIS_URL)


TICK = 0.2  # seconds between two ticks of a job waiting at a gate


def _key(name: str) -> str:
    return f"jobstatus-test:gate:{name}"


def tick() -> None:
    """Inside a tracked job, a progress call that changes nothing: it raises
    ``jobstatus.Cancelled`` once the job's cancel request reached this process."""
    try:
        status = jobstatus.current()
    except jobstatus.NoCurrentJob:
        return
    status.progress.increment(0)


def wait(name: str, timeout: float = 60.0) -> None:
    """Block until ``open_gate(name)``, ticking (see ``tick``); give up after ``timeout``
    seconds.

    Raises:
        jobstatus.Cancelled: the waiting job was cancelled.
    """
    deadline = ticked = time.monotonic()
    deadline += timeout
    while not _client.exists(_key(name)):
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"gate {name!r} was never opened")
        if now - ticked >= TICK:  # an unthrottled job writes at each tick: not too often
            tick()
            ticked = now
        time.sleep(0.02)


def open_gate(name: str) -> None:
    _client.set(_key(name), 1, ex=120)


def close(name: str) -> None:
    _client.delete(_key(name))


def _count_key(name: str) -> str:
    return f"jobstatus-test:count:{name}"


def incr(name: str) -> int:
    """Add one to a counter shared by every process; return the new count."""
    key = _count_key(name)
    count = int(_client.incr(key))
    _client.expire(key, 120)
    return count


def count(name: str) -> int:
    """The counter ``incr`` adds to, without adding (0 before the first ``incr``)."""
    return int(_client.get(_count_key(name)) or 0)


def is_open(name: str) -> bool:
    return bool(_client.exists(_key(name)))


# -- the same for async apps (arq, Taskiq): without blocking the event loop ------------


async def await_gate(name: str, timeout: float = 60.0) -> None:
    """``wait`` without blocking the loop: a cancel request raises Cancelled here."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        for waited in range(int(timeout / 0.02)):
            if await client.exists(_key(name)):
                return
            if waited % int(TICK / 0.02) == 0:  # an unthrottled job writes at each tick
                tick()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"gate {name!r} was never opened")
    finally:
        await client.aclose()


async def aopen_gate(name: str) -> None:
    """``open_gate`` without blocking the loop."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.set(_key(name), 1, ex=120)
    finally:
        await client.aclose()


async def aincr(name: str) -> int:
    """``incr`` without blocking the loop."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        key = f"jobstatus-test:count:{name}"
        count = int(await client.incr(key))
        await client.expire(key, 120)
        return count
    finally:
        await client.aclose()
