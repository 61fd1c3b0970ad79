"""The Taskiq broker the integration tests run in a real worker (``taskiq worker``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _gate
import _worker_options
import redis.asyncio
from taskiq import SimpleRetryMiddleware
from taskiq.exceptions import NoResultError
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

import jobstatus
from jobstatus.integrations.taskiq import StatusMiddleware

GATE_REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The test process imports this module too, without the worker's environment: its
# broker must reach the same server, database 8 (_support.TASKIQ_REDIS_DB).
BROKER = os.environ.get("JOBSTATUS_TEST_TASKIQ_REDIS") or urlunsplit(
    urlsplit(GATE_REDIS_URL)._replace(path="/8")
)
QUEUE = os.environ.get("JOBSTATUS_TEST_TASKIQ_QUEUE", "jobstatus-test:taskiq")
_worker_options.configure_from_env()  # the killed-worker tests beat fast


def make_broker(queue: str) -> ListQueueBroker:
    """A broker of this app on ``queue``: the worker's, or a test's own publisher.

    A publisher on its own event loop needs its own broker: redis-py's connections
    belong to the loop that opened them.
    """
    middlewares: list[Any] = [SimpleRetryMiddleware(default_retry_count=2)]
    if os.environ.get("JOBSTATUS_TEST_TASKIQ_PLAIN") != "1":  # the benchmark's baseline
        middlewares.append(StatusMiddleware(includes={"status", "exception", "serialized_job"}))
    # redis-py 8 times reads out after 5 s by default, and taskiq-redis's BRPOP waits for
    # the next message with no timeout of its own: an idle worker died every 5 s.
    return (
        ListQueueBroker(BROKER, queue_name=queue, socket_timeout=None)
        .with_result_backend(RedisAsyncResultBackend(BROKER, result_ex_time=300, prefix_str=queue))
        .with_middlewares(*middlewares)
    )


broker = make_broker(QUEUE)


DECLARED_GROUP = "jobstatus-test-taskiq-declared-group"  # made by the test first


@broker.task(task_name="in_declared_group", jobstatus={"parent": DECLARED_GROUP})
async def in_declared_group() -> int:
    return 1


@broker.task(task_name="opens")
async def opens(gate: str) -> str:
    """A side effect a test can see: the gate opens (so a cancelled job must not run it)."""
    await _gate.aopen_gate(gate)
    return "ran"


@broker.task(task_name="gated_with_retries", retry_on_error=True, max_retries=3)
async def gated_with_retries(gate: str, marker: str) -> str:
    """Count its runs, then wait at the gate ticking progress (a cancel stops it)."""
    await _gate.aincr(marker)
    await _gate.await_gate(gate)
    return "released"


@broker.task(task_name="add")
async def add(x: int, y: int) -> int:
    return x + y


@broker.task(task_name="sync_add")
def sync_add(x: int, y: int) -> int:
    """A sync task: Taskiq runs it in a thread, where ``current()`` still works."""
    jobstatus.current()["thread"] = True
    return x + y


@broker.task(task_name="gated", jobstatus={"throttle_interval": 3600})
async def gated(gate: str, steps: int) -> str:
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


@broker.task(task_name="fail")
async def fail(message: str) -> None:
    raise ValueError(message)


@broker.task(task_name="retry_once", retry_on_error=True, max_retries=3)
async def retry_once(marker: str, gate: str) -> str:
    """The first attempt waits at the gate and fails (a Redis key remembers it), the
    second succeeds."""
    client = redis.asyncio.Redis.from_url(GATE_REDIS_URL)
    try:
        first = await client.set(f"jobstatus-test:once:{marker}", 1, nx=True, ex=120)
    finally:
        await client.aclose()
    if first:
        await _gate.await_gate(gate)
        raise ConnectionError("first try")
    return "second try"


@broker.task(task_name="always_fail", retry_on_error=True, max_retries=2)
async def always_fail() -> None:
    raise ValueError("always")


@broker.task(task_name="too_slow", timeout=0.5)
async def too_slow() -> None:
    await asyncio.sleep(30)


@broker.task(task_name="no_result")
async def no_result() -> None:
    raise NoResultError()


@broker.task(task_name="swallow")
async def swallow() -> str:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@broker.task(task_name="untracked", jobstatus=False)
async def untracked(gate: str) -> int:
    await _gate.aopen_gate(gate)
    return 1


@broker.task(task_name="plain_record", jobstatus={"includes": {"status"}})
async def plain_record() -> int:
    return 2


@broker.task(task_name="noop")
async def noop() -> None:
    return None
