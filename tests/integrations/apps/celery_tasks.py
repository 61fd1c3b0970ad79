"""The Celery app the integration tests run in a real worker."""

from __future__ import annotations

import os
import signal
import time

import _gate
import _worker_options
from celery import Celery
from celery.exceptions import Ignore, Reject

import jobstatus
from jobstatus.integrations.celery import StatusTask, track

app = Celery(
    "celery_tasks",
    broker=os.environ.get("JOBSTATUS_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/3"),
    backend=os.environ.get("JOBSTATUS_TEST_CELERY_BACKEND"),
)
app.conf.update(
    task_default_queue=os.environ.get("JOBSTATUS_TEST_CELERY_QUEUE", "jobstatus-test"),
    result_expires=300,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
track(app, includes={"status", "exception", "serialized_job"})
_worker_options.configure_from_env()  # the killed-worker tests beat fast


@app.task(name="celery_tasks.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="celery_tasks.total")
def total(values: list[int]) -> int:
    """A chord's body: the sum of its header's results."""
    return sum(values)


@app.task(name="celery_tasks.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(
    name="celery_tasks.gated",
    base=StatusTask,
    bind=True,
    jobstatus={"throttle_interval": 3600},
)
def gated(self: StatusTask, gate: str, steps: int) -> str:
    """Write progress and a key, wait at the gate, then make throttled (held) progress."""
    self.progress.total = steps
    self.progress.current = 1
    self.status["step"] = "waiting"
    _gate.wait(gate)
    for _ in range(steps - 1):
        self.progress.increment()
    jobstatus.current().update(step="done")  # throttled: held until the end
    return "released"


@app.task(name="celery_tasks.retry_once", bind=True, max_retries=3)
def retry_once(self: StatusTask, marker: str, gate: str) -> int:
    """The first attempt waits at the gate, then is retried two seconds later (queued
    meanwhile); the second returns."""
    try:
        if self.request.retries == 0:
            _gate.wait(gate)
            raise ConnectionError("first try")
    except ConnectionError as exc:
        raise self.retry(exc=exc, countdown=2) from exc
    return self.request.retries


@app.task(name="celery_tasks.always_fail", bind=True, max_retries=1, default_retry_delay=0)
def always_fail(self: StatusTask) -> None:
    raise self.retry(exc=ValueError("always"))


@app.task(
    name="celery_tasks.autoretried",
    base=StatusTask,
    bind=True,
    autoretry_for=(Exception,),
    max_retries=3,
    default_retry_delay=0,
)
def autoretried(self: StatusTask, gate: str) -> str:
    """Retried on any exception, Cancelled included (which must not rerun it)."""
    self.status["step"] = "waiting"
    _gate.wait(gate)
    return "released"


@app.task(name="celery_tasks.ignored")
def ignored() -> None:
    raise Ignore()


@app.task(name="celery_tasks.rejected")
def rejected() -> None:
    raise Reject("bad input", requeue=False)


@app.task(name="celery_tasks.too_slow", time_limit=1)
def too_slow() -> None:
    time.sleep(30)


@app.task(name="celery_tasks.killed")
def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="celery_tasks.swallow")
def swallow() -> str:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)
    return "handled"


@app.task(name="celery_tasks.in_group", jobstatus={"parent": "celery-tasks-group"})
def in_group() -> int:
    """Every job of this task joins one group (a per-task parent; the test makes it)."""
    return 3


@app.task(name="celery_tasks.opens")
def opens(gate: str) -> int:
    """A plain task (tracked by the app) whose side effect a test can see."""
    _gate.open_gate(gate)
    return 1


@app.task(name="celery_tasks.untracked", jobstatus=False)
def untracked(gate: str) -> int:
    _gate.open_gate(gate)
    return 1


@app.task(name="celery_tasks.plain_record", jobstatus={"expires_in": 120, "includes": {"status"}})
def plain_record() -> int:
    return 2


@app.task(name="celery_tasks.requeued_once", acks_late=True)
def requeued_once(counter: str) -> str:
    """Reject (and requeue) the first delivery; the second returns."""
    if _gate.incr(counter) == 1:
        raise Reject("not yet", requeue=True)
    return "second delivery"


@app.task(name="celery_tasks.soft_limit", soft_time_limit=0.5)
def soft_limit() -> None:
    for _ in range(300):
        time.sleep(0.1)


@app.task(name="celery_tasks.requeue_too_late")
def requeue_too_late() -> None:
    """Asks for a requeue, but its message was acknowledged when it started."""
    raise Reject("again", requeue=True)
