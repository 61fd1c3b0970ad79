"""The ``django.tasks`` signal receivers that record every task's lifecycle.

| signal          | where it fires                         | record                          |
|-----------------|----------------------------------------|---------------------------------|
| task_enqueued   | the enqueuing process                  | queued                          |
| task_started    | the worker, in the task's own thread   | working; ``current()`` works    |
| task_finished   | the worker, right after the task       | completed, or failed + exception|

The running :class:`~jobstatus.Job` is kept per result id between
``task_started`` and ``task_finished``, so the final write carries every
throttled change still held. An async task's Job writes off its event loop
(see :mod:`.async_tasks`); the receivers wait for its lifecycle writes.
Both signal sets are hooked: Django's own ``django.tasks.signals`` (Django
6.0 and newer) and the ``django_tasks`` backport's, whichever the
configured backend sends.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..._config import announce_store, validate_options
from ..._heartbeat import heartbeat
from ..._job import Job
from ..._lifecycle import raised
from ..._record import Change
from ..._status import Status
from . import conf
from .async_tasks import AsyncTaskJob

SIGNAL_MODULES = ("django.tasks.signals", "django_tasks.signals")
OPTIONS_ATTRIBUTE = "__jobstatus_options__"
DISPATCH_PREFIX = "jobstatus"

F = TypeVar("F", bound=Callable[..., Any])

_running: dict[str, tuple[Job, contextvars.Token[Status | None]]] = {}
_running_lock = threading.Lock()
_enqueued = threading.local()  # the immediate backend's Job, from enqueued to started


def options(**given: Any) -> Callable[[F], F]:
    """Per-task options, for a function decorated with Django's ``@task``.

    Put it under ``@task()``. ``JOBSTATUS["TASKS"]`` in settings overrides it.

    Raises:
        ConfigurationError: an unknown option or a bad value, at import time.

    Example::

        @task()
        @jobstatus_django.options(throttle_interval=1, includes={"status", "exception"})
        def export(rows): ...
    """
    checked = validate_options(given)

    def decorate(function: F) -> F:
        setattr(function, OPTIONS_ATTRIBUTE, checked)
        return function

    return decorate


def _result_id(task_result: Any) -> str:
    return str(task_result.id)


def _task_options(task_result: Any) -> dict[str, Any]:
    task = task_result.task
    chosen = dict(getattr(getattr(task, "func", None), OPTIONS_ATTRIBUTE, {}))
    chosen.update(conf.current().tasks.get(task.module_path, {}))
    return chosen


def _job(task_result: Any, *, runs_here: bool = True) -> Job:
    """The task's Job; one that runs an async task here writes off the task's loop."""
    job_id, options = _result_id(task_result), _task_options(task_result)
    if runs_here and inspect.iscoroutinefunction(getattr(task_result.task, "func", None)):
        return AsyncTaskJob(job_id, options=options)
    return Job(job_id, options=options)


def _written(job: Job) -> None:
    """Return once the job's writes so far are done (an async task's run on another loop)."""
    if isinstance(job, AsyncTaskJob):
        job.written()


def serialized(task_result: Any) -> dict[str, Any]:
    """The ``serialized_job`` of a TaskResult: name, args, kwargs, queue, job_id, backend."""
    task = task_result.task
    return {
        "name": task.module_path,
        "args": list(task_result.args),
        "kwargs": dict(task_result.kwargs),
        "queue": task.queue_name,
        "job_id": _result_id(task_result),
        "backend": task_result.backend,
        "priority": task.priority,
    }


def task_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """Record ``queued``, unless a worker already took the task."""
    immediate = getattr(sender, "__name__", "") == "ImmediateBackend"
    job = _job(task_result, runs_here=immediate)
    if immediate:
        # It runs the task right after this signal, in this thread: keep the Job.
        _enqueued.job = job
    elif _already_started(job):
        return
    job.enqueued(serialized(task_result))
    _written(job)


def _already_started(job: Job) -> bool:
    """Whether a worker wrote first (it can start a task before this signal is handled).

    Backends send ``task_enqueued`` once the task is visible to workers, so a
    fast worker can win the race; "queued" must not then hide "working" or the
    end. The immediate backend runs the task after this signal: no race, no read.
    """
    try:
        record = job.store.read(job.job_id)
    except Exception:
        return False  # the write that follows reports the failure as configured
    return record is not None and record.get("status") in ("working", "completed", "failed")


def task_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """Record ``working`` and make the job current for the task body."""
    job = getattr(_enqueued, "job", None)
    _enqueued.job = None
    if job is None or job.job_id != _result_id(task_result):
        job = _job(task_result)
    announce_store(job.store, "Django tasks")
    job.started(serialized(task_result))
    _written(job)
    # Backends send task_started in the thread and context that then runs the
    # task, so setting the context variable here is seen by the task body.
    token = job.enter()
    with _running_lock:
        _running[_result_id(task_result)] = (job, token)


def task_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """Record ``completed`` or ``failed`` (with the exception), flushing held changes."""
    with _running_lock:
        entry = _running.pop(_result_id(task_result), None)
    job = entry[0] if entry is not None else _job(task_result)
    try:
        if _status_name(task_result) != "FAILED":
            job.finished()
        else:
            exc = _live_exception(task_result)
            if exc is not None:
                job.finished(exc)
            else:
                heartbeat.remove(job.writer)
                job.writer.submit(_failure_without_exception(job, task_result), force=True)
        _written(job)
    finally:
        if entry is not None:
            _leave(job, entry[1])


def _leave(job: Job, token: contextvars.Token[Status | None]) -> None:
    # Finished in another context than it started (ValueError) or after a reset
    # (RuntimeError): nothing of ours is set here any more.
    with contextlib.suppress(ValueError, RuntimeError):
        job.exit(token)


def _status_name(task_result: Any) -> str:
    status = task_result.status
    return str(getattr(status, "value", status))


def _class_path(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _live_exception(task_result: Any) -> BaseException | None:
    """The task's exception: backends send task_finished inside their ``except`` block."""
    exc = sys.exc_info()[1]
    if exc is None:
        return None
    errors = getattr(task_result, "errors", None)
    if errors and getattr(errors[-1], "exception_class_path", None) != _class_path(type(exc)):
        return None  # an unrelated exception being handled around the backend
    return exc


def _failure_without_exception(job: Job, task_result: Any) -> Change:
    """``failed`` from the TaskResult's recorded error (class path and traceback)."""
    if job.failed_by_hand:
        return Change()
    change = raised(job.options, None)
    errors = getattr(task_result, "errors", None)
    if errors and "exception" in job.options.includes:
        change.set["exception"] = _error_info(errors[-1])
    return change


def _error_info(error: Any) -> dict[str, str]:
    path = str(getattr(error, "exception_class_path", "") or "Exception")
    name = path.removeprefix("builtins.")
    lines = str(getattr(error, "traceback", "") or "").strip().splitlines()
    last = lines[-1] if lines else ""
    message = ""
    for head in (path, name, path.rsplit(".", 1)[-1]):
        if last.startswith(f"{head}:"):
            message = last[len(head) + 1 :].strip()
            break
    return {"class": name, "message": message}


def connect() -> list[str]:
    """Hook the receivers to every task signal module installed; return their names."""
    hooked = []
    for module_name in SIGNAL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, receiver in (
            ("task_enqueued", task_enqueued),
            ("task_started", task_started),
            ("task_finished", task_finished),
        ):
            getattr(module, name).connect(
                receiver, dispatch_uid=f"{DISPATCH_PREFIX}:{module_name}:{name}", weak=False
            )
        hooked.append(module_name)
    return hooked


def disconnect() -> None:
    """Undo :func:`connect` (for tests and benchmarks)."""
    for module_name in SIGNAL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in ("task_enqueued", "task_started", "task_finished"):
            getattr(module, name).disconnect(dispatch_uid=f"{DISPATCH_PREFIX}:{module_name}:{name}")
