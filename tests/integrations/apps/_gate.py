"""A gate a task waits at until the test opens it (a Redis key)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_client = redis.Redis.from_url(REDIS_URL)


def _key(name: str) -> str:
    return f"jobstatus-test:gate:{name}"


def wait(name: str, timeout: float = 60.0) -> None:
    """Block until ``open_gate(name)``; give up after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not _client.exists(_key(name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {name!r} was never opened")
        time.sleep(0.02)


def wait_ticking(name: str, status: Any, timeout: float = 60.0) -> None:
    """``wait``, ticking the job's progress by 0 meanwhile: a throttled tick does no
    I/O, and raises ``jobstatus.Cancelled`` once a cancel request reached the job."""
    deadline = time.monotonic() + timeout
    while not _client.exists(_key(name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {name!r} was never opened")
        status.progress.increment(0)
        time.sleep(0.02)


def open_gate(name: str) -> None:
    _client.set(_key(name), 1, ex=120)


def close(name: str) -> None:
    _client.delete(_key(name))


def incr(name: str) -> int:
    """Add one to a counter shared by every process; return the new count."""
    key = f"jobstatus-test:count:{name}"
    count = int(_client.incr(key))
    _client.expire(key, 120)
    return count


def is_open(name: str) -> bool:
    return bool(_client.exists(_key(name)))
