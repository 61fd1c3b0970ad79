"""The job functions the RQ integration tests run in a real ``rq worker``."""

from __future__ import annotations

import os
import signal
import time

import _gate
import _worker_options
from rq import Retry

import jobstatus
from jobstatus.integrations.rq import status_options

FULL = {"status", "exception", "serialized_job"}
DECLARED_GROUP = "jobstatus-test-rq-declared-group"  # made by the test before it publishes
_worker_options.configure_from_env()  # the killed-worker tests beat fast


@status_options(includes=FULL)
def add(x: int, y: int) -> int:
    return x + y


@status_options(includes=FULL)
def fail(message: str) -> None:
    raise ValueError(message)


@status_options(includes=FULL, throttle_interval=3600)
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


@status_options(includes=FULL)
def retry_once(marker: str, gate: str) -> int:
    """The first attempt waits at the gate and fails, the second succeeds (the attempt
    count lives in Redis)."""
    if _gate.incr(marker) == 1:
        _gate.wait(gate)
        raise ConnectionError("first try")
    return 2


@status_options(includes=FULL)
def always_fail() -> None:
    raise ValueError("always")


@status_options(includes=FULL)
def returns_retry() -> Retry:
    return Retry(max=1)


@status_options(includes=FULL)
def too_slow() -> None:
    time.sleep(30)


@status_options(includes=FULL)
def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@status_options(includes=FULL)
def swallow() -> str:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@status_options(enabled=False)
def untracked(gate: str) -> int:
    _gate.open_gate(gate)
    return 1


@status_options(includes={"status"})
def plain_record() -> int:
    return 2


@status_options(parent=DECLARED_GROUP)
def in_declared_group() -> int:
    return 1


@status_options(includes=FULL)
def opens(gate: str) -> str:
    """A side effect a test can see: the gate opens (so a cancelled job must not run it)."""
    _gate.open_gate(gate)
    return "ran"
