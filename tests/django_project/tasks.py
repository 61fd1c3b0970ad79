"""Tasks of the test project. The db_worker imports them by path, so they live at module level."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # the backport, on Django 5.2

import jobstatus
from jobstatus.integrations.django import options

HANDSHAKE_TIMEOUT = 30.0


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def count(n: int) -> int:
    status = jobstatus.current()
    status.progress.total = n
    for _ in range(n):
        status.progress.increment()
    status["step"] = "done"
    return n


@task()
def fails(message: str) -> None:
    raise ValueError(message)


class TaskBroke(Exception):
    """A project's own exception class."""


@task()
def fails_own(message: str) -> None:
    raise TaskBroke(message)


@task()
@options(throttle_interval=3600)
def gated(gate: str, steps: int) -> str:
    """Write progress and a key, wait at the gate (tests/integrations/apps/_gate.py),
    then make throttled (held) progress: the queue contract suite's task."""
    from tests.integrations.apps import _gate  # needs redis, which only this task uses

    status = jobstatus.current()
    status.progress.total = steps
    status.progress.current = 1
    status["step"] = "waiting"
    _gate.wait(gate)
    for _ in range(steps - 1):
        status.progress.increment()
    status.update(step="done")
    return "released"


@task()
@options(parent="django-tasks-group")
def in_group() -> int:
    """Every job of this task joins one group (a per-task parent; the test makes it)."""
    return 3


@task()
def swallow() -> str:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@task()
@options(includes={"status"})
def plain_record() -> int:
    return 2


@task()
def swallows() -> str:
    try:
        {}["missing"]
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@task()
@options(throttle_interval=60)
def throttled(n: int) -> None:
    status = jobstatus.current()
    status.progress.total = n
    for index in range(n):
        status.progress.increment()
        status.update(step=f"row {index}")


@task()
def configured(n: int) -> None:
    """Throttled by JOBSTATUS["TASKS"] in settings, not by a decorator."""
    status = jobstatus.current()
    for _ in range(n):
        status.progress.increment()


@task()
async def async_count(n: int) -> int:
    status = jobstatus.current()
    status.progress.total = n
    for _ in range(n):
        await asyncio.sleep(0)
        status.progress.increment()
    return n


@task()
async def async_add(a: int, b: int) -> int:
    return a + b


@task()
async def async_fails(message: str) -> None:
    jobstatus.current()["step"] = "about to fail"
    await asyncio.sleep(0)
    raise ValueError(message)


TICK = 0.01  # seconds between two ticks of the ticker below


@task()
async def ticks_while_writing() -> list[float]:
    """Writes its status while a 10 ms ticker runs in its event loop; returns the ticks' times.

    It writes through the plain API (``status[key] = value``), waits for that
    write (``aflush``), then writes through the async one (``aupdate``, which
    waits too): at least two store calls while the ticker runs.
    """
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(TICK)

    running = asyncio.create_task(ticker())
    await asyncio.sleep(3 * TICK)
    status = jobstatus.current()
    status["step"] = "plain"
    await status.aflush()
    status.progress.increment()
    await status.aupdate(step="async")
    await asyncio.sleep(3 * TICK)
    running.cancel()
    return ticks


@task()
def nested() -> str:
    """Enqueues another task (run at once by the immediate backend); current() comes back."""
    outer = jobstatus.current().job_id
    add.enqueue(1, 1)
    assert jobstatus.current().job_id == outer
    return outer


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


@task()
def halfway(folder: str) -> str:
    """Publishes progress, says so with a file, and waits for the test's go-ahead."""
    status = jobstatus.current()
    status.progress.total = 10
    status.progress.current = 5
    status["step"] = "halfway"
    Path(folder, "ready").touch()
    _wait_for(Path(folder, "go"))
    status.progress.finish()
    return "done"


@task()
def hangs(folder: str) -> None:
    """Runs until its worker is killed."""
    Path(folder, "ready").touch()
    time.sleep(HANDSHAKE_TIMEOUT)
