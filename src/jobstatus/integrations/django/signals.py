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
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from ..._config import store_or_default
from ..._group import ancestry
from ..._job import SPEC_ATTRIBUTE, Job, JobSpec
from .._common import Attempt, Attempts, declaring, enqueue, quietly, spec_from
from . import conf
from .async_tasks import AsyncTaskJob

SIGNAL_MODULES = ("django.tasks.signals", "django_tasks.signals")
DISPATCH_PREFIX = "jobstatus"

F = TypeVar("F", bound=Callable[..., Any])

_attempts = Attempts()
_enqueued = threading.local()  # the immediate backend's Job, from enqueued to started
_publish_parent: ContextVar[str | None] = ContextVar("jobstatus_django_parent", default=None)


def options(*, parent: object = None, **given: Any) -> Callable[[F], F]:
    """Per-task options, for a function decorated with Django's ``@task``.

    Put it under ``@task()``. ``JOBSTATUS["TASKS"]`` in settings overrides it.
    ``parent`` (a group's id or Status) is the group every job of the task joins.

    Raises:
        ConfigurationError: an unknown option or a bad value, at import time.

    Example::

        @task()
        @jobstatus_django.options(throttle_interval=1, includes={"status", "exception"})
        def export(rows): ...
    """
    return declaring("options()", parent=parent, options=given)


@contextlib.contextmanager
def in_group(parent: object, *, store: object = None) -> Iterator[str]:
    """Make every task enqueued in the block a child of the group ``parent``
    (django.tasks has no per-enqueue options of its own)::

        g = jobstatus.group(name="import")
        with in_group(g):
            for path in paths:
                load.enqueue(path)

    The group is checked on entry, so a bad parent fails before anything is enqueued.
    The parent is recorded with ``queued`` by the enqueuing process.

    Raises:
        TypeError, ValueError: a malformed id, or a parent that does not exist or is
            not a group.
        StoreError: the store failed.
    """
    checked = ancestry.check(store_or_default(store), parent, None)
    token = _publish_parent.set(checked)
    try:
        yield checked
    finally:
        _publish_parent.reset(token)


def _spec(task_result: Any) -> JobSpec:
    """The task's spec: its ``options()``, then ``JOBSTATUS["TASKS"]``; named by its path."""
    task = task_result.task
    own = spec_from(getattr(task.func, SPEC_ATTRIBUTE, True), task.module_path) or JobSpec()
    chosen = {**own.options, **conf.current().tasks.get(task.module_path, {})}
    return JobSpec(name=task.module_path, options=chosen, parent=own.parent)


def _job(task_result: Any, *, runs_here: bool = True, parent: object = None) -> Job:
    """The task's Job; one that runs an async task here writes off the task's loop."""
    spec, job_id = _spec(task_result), str(task_result.id)
    if runs_here and inspect.iscoroutinefunction(getattr(task_result.task, "func", None)):
        chosen = spec.parent if parent is None else parent
        return AsyncTaskJob(job_id, name=spec.name, options=spec.options, parent=chosen)
    return spec.job(job_id, parent=parent)


def _written(job: Job, what: str) -> None:
    """Return once the job's writes so far (``what``) are done (an async task's run on
    another loop)."""
    if isinstance(job, AsyncTaskJob):
        with quietly(job.job_id, what):
            job.written()


def serialized(task_result: Any) -> dict[str, Any]:
    """The ``serialized_job`` of a TaskResult: name, args, kwargs, queue, job_id, backend."""
    task = task_result.task
    return _spec(task_result).serialized(
        str(task_result.id),
        task_result.args,
        task_result.kwargs,
        task.queue_name,
        backend=task_result.backend,
        priority=task.priority,
    )


def task_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """Record ``queued``, unless a worker already took the task."""
    immediate = getattr(sender, "__name__", "") == "ImmediateBackend"
    job = _job(task_result, runs_here=immediate, parent=_publish_parent.get())
    if immediate:
        # It runs the task right after this signal, in this thread: keep the Job.
        _enqueued.job = job
    elif _already_started(job):
        return
    enqueue(job, serialized(task_result))
    _written(job, "queued")


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
    if job is None or job.job_id != str(task_result.id):
        job = _job(task_result)
    attempt = Attempt(job)
    # Backends send task_started in the thread and context that then runs the
    # task, so the job made current here is seen by the task body.
    runs = attempt.start(serialized(task_result))
    _written(job, "working")
    _attempts.add(attempt)
    if not runs:
        # Cancelled before it started (recorded cancelled): django.tasks has no revoke,
        # and its backends send this signal where its exception stops the task.
        raise attempt.cancelled()


def task_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """Record ``completed`` or ``failed`` (with the exception), flushing held changes."""
    attempt = _attempts.pop(str(task_result.id)) or Attempt(_job(task_result))
    failed = _status_name(task_result) == "FAILED"
    attempt.finish(_failure(task_result, attempt.job) if failed else None)
    _written(attempt.job, "the outcome")


def _status_name(task_result: Any) -> str:
    status = task_result.status
    return str(getattr(status, "value", status))


def _live_exception(task_result: Any) -> BaseException | None:
    """The task's exception: backends send task_finished inside their ``except`` block."""
    exc = sys.exc_info()[1]
    if exc is None:
        return None
    errors = getattr(task_result, "errors", None)
    path = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if errors and getattr(errors[-1], "exception_class_path", None) != path:
        return None  # an unrelated exception being handled around the backend
    return exc


def _failure(task_result: Any, job: Job) -> BaseException | None:
    """Why a task failed: its live exception, else what its TaskResult recorded (a
    backend that reports a failure outside its ``except`` block); None when the task
    marked itself failed by hand, which then stays."""
    exc = _live_exception(task_result)
    if exc is not None or job.failed_by_hand:
        return exc
    return _recorded_error(task_result)


def _recorded_error(task_result: Any) -> Exception:
    """The task's exception as its TaskResult recorded it (class path and traceback).

    The class may not import in this process, so an exception stands in for it,
    recorded by the same class path and message.
    """
    errors = getattr(task_result, "errors", None)
    path, message = _error_info(errors[-1]) if errors else ("Exception", "")
    module, _, qualname = path.rpartition(".")
    namespace = {"__module__": module or "builtins", "__qualname__": qualname}
    stand_in: type[Exception] = type(qualname, (Exception,), namespace)
    return stand_in(message)


def _error_info(error: Any) -> tuple[str, str]:
    """The class path and message of a TaskResult's error."""
    path = str(getattr(error, "exception_class_path", "") or "Exception")
    name = path.removeprefix("builtins.")
    lines = str(getattr(error, "traceback", "") or "").strip().splitlines()
    last = lines[-1] if lines else ""
    for head in (path, name, path.rsplit(".", 1)[-1]):
        if last.startswith(f"{head}:"):
            return name, last[len(head) + 1 :].strip()
    return name, ""


def _installed() -> Iterator[tuple[str, Any]]:
    """Each task signal module installed: its name and the module."""
    for module_name in SIGNAL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        yield module_name, module


def connect() -> list[str]:
    """Hook the receivers to every task signal module installed; return their names."""
    for module_name, module in _installed():
        for name, receiver in _RECEIVERS.items():
            signal, uid = getattr(module, name), f"{DISPATCH_PREFIX}:{module_name}:{name}"
            signal.connect(receiver, dispatch_uid=uid, weak=False)
    return [module_name for module_name, _ in _installed()]


def disconnect() -> None:
    """Undo :func:`connect` (for tests and benchmarks)."""
    for module_name, module in _installed():
        for name in _RECEIVERS:
            getattr(module, name).disconnect(dispatch_uid=f"{DISPATCH_PREFIX}:{module_name}:{name}")


_RECEIVERS = {
    "task_enqueued": task_enqueued,
    "task_started": task_started,
    "task_finished": task_finished,
}
