"""The Huey app the integration tests run in a real consumer (RedisHuey or SqliteHuey)."""

from __future__ import annotations

import os

import _gate
import _worker_options
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.exceptions import CancelExecution

import jobstatus
from jobstatus.integrations.huey import track

KIND = os.environ.get("JOBSTATUS_TEST_HUEY_KIND", "redis")
NAME = os.environ.get("JOBSTATUS_TEST_HUEY_NAME", "jobstatus-test")
DECLARED_GROUP = "jobstatus-test-huey-declared-group"  # made by the test before it publishes


def make_huey(kind: str, name: str) -> Huey:
    if kind == "sqlite":
        return SqliteHuey(name, filename=os.environ["JOBSTATUS_TEST_HUEY_FILE"])
    url = os.environ.get("JOBSTATUS_TEST_HUEY_REDIS", "redis://127.0.0.1:6379/6")
    return RedisHuey(name, url=url, notify_result=True)


huey = make_huey(KIND, NAME)
_worker_options.configure_from_env()  # the killed-worker tests beat fast
if os.environ.get("JOBSTATUS_TEST_HUEY_PLAIN") != "1":  # the benchmark's baseline runs without
    track(huey, includes={"status", "exception", "serialized_job"})


@huey.pre_execute()
def cancel_marked(task: object) -> None:
    if getattr(task, "name", "") == "cancelled_by_hook":
        raise CancelExecution("not today")


@huey.task()
def add(x: int, y: int) -> int:
    return x + y


@huey.task(jobstatus={"throttle_interval": 3600})
def gated(gate: str, steps: int) -> str:
    """Write progress and a key, wait at the gate, then make throttled (held) progress."""
    status = jobstatus.current()
    status.progress.total = steps
    status.progress.current = 1
    status["step"] = "waiting"
    _gate.wait(gate)  # ticks: a cancel request raises Cancelled here
    for _ in range(steps - 1):
        status.progress.increment()
    status.update(step="done")  # throttled: held until the end
    return "released"


@huey.task()
def fail(message: str) -> None:
    raise ValueError(message)


@huey.task(retries=1, retry_delay=2)
def retry_once(marker: str, gate: str) -> str:
    """The first attempt waits at the gate and fails, the second succeeds (a Redis
    counter remembers the attempts)."""
    if _gate.incr(marker) == 1:
        _gate.wait(gate)
        raise ConnectionError("first try")
    return "second try"


@huey.task(retries=1)
def always_fail() -> None:
    raise ValueError("always")


@huey.task()
def cancelled_by_hook() -> int:
    return 1


@huey.task(retries=2)
def cancel_itself() -> None:
    raise CancelExecution("given up", retry=False)


@huey.task()
def swallow() -> str:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@huey.task(jobstatus=False)
def untracked(gate: str) -> int:
    _gate.open_gate(gate)
    return 1


@huey.task(jobstatus={"includes": {"status"}})
def plain_record() -> int:
    return 2


@huey.task()
def noop() -> bool:
    return True  # Huey stores no None result by default: the benchmark waits for this


@huey.task()
@huey.lock_task("jobstatus-test-lock")
def locked() -> int:
    return 1


@huey.task(jobstatus={"parent": DECLARED_GROUP})
def in_declared_group() -> int:
    return 1


@huey.task(retries=3, retry_delay=1)
def gated_with_retries(gate: str, marker: str) -> str:
    """Count its runs, then wait at the gate ticking progress (a cancel stops it)."""
    _gate.incr(marker)
    _gate.wait(gate)
    return "released"


@huey.task()
def opens(gate: str) -> str:
    """A side effect a test can see: the gate opens (so a cancelled job must not run it)."""
    _gate.open_gate(gate)
    return "ran"
