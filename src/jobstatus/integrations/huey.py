"""Huey: record every task's lifecycle from Huey's signals.

One call connects the handlers to a Huey instance; do it in the module that
defines the instance, so both the producer and the consumer run it::

    from huey import RedisHuey
    from jobstatus.integrations.huey import track

    huey = RedisHuey("shop")
    track(huey)                                       # every task of this instance

    @huey.task(jobstatus={"throttle_interval": 0.5})  # per-task options
    def export(rows): ...

    @huey.task(jobstatus=False)                       # never tracked
    def ping(): ...

    @huey.task(jobstatus={"parent": "nightly"})       # joins the group "nightly"
    def load(path): ...

    with children_of(g):                              # the tasks enqueued in the block
        load("a.csv")                                 # join the group g

Huey's own revoke and ``CancelExecution`` record ``cancelled``; a task whose
cancel was requested with ``jobstatus.cancel`` before it started does not run (a
pre-execute hook cancels it), and one that stops on ``jobstatus.Cancelled`` is not
retried. How each Huey signal maps to the record is in ``docs/huey.md``.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from .._config import store_or_default
from .._errors import Cancelled
from .._group import ancestry
from .._job import JobSpec
from .._record import Record
from .._revokers import register_revoker
from ._common import (
    Attempt,
    Attempts,
    enqueue,
    missing,
    publisher_job,
    record_outcome,
    spec_of_options,
    task_spec,
    worker_job,
)

try:
    from huey import Huey
    from huey import signals as huey_signals
    from huey.exceptions import CancelExecution, HueyException
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("huey", "Huey") from exc

__all__ = ["TaskExpired", "TaskInterrupted", "TaskRevoked", "children_of", "track", "untrack"]

PRE_EXECUTE_HOOK = "jobstatus_refuse_cancelled"


class TaskRevoked(Cancelled, HueyException):  # type: ignore[misc]
    """How a task Huey skipped because it was revoked ends: ``cancelled``."""


class TaskExpired(HueyException):  # type: ignore[misc]
    """Recorded as a job's exception when Huey skipped it because it had expired."""


class TaskInterrupted(HueyException):  # type: ignore[misc]
    """Recorded as a job's exception when the consumer stopped while the task ran."""


_instances: weakref.WeakKeyDictionary[Huey, JobSpec] = weakref.WeakKeyDictionary()
_connected: weakref.WeakSet[Huey] = weakref.WeakSet()  # untrack() keeps the handlers, idle
_attempts = Attempts()
_parent: ContextVar[str | None] = ContextVar("jobstatus_huey_parent", default=None)


@contextlib.contextmanager
def children_of(parent: object, *, store: object = None) -> Iterator[str]:
    """The tasks enqueued in the block (in this thread or task) join the group ``parent``
    (an id or a Status): Huey's messages carry nothing more, so the group is given
    around the call. Yields the group's id.

    Raises:
        TypeError, ValueError: ``parent`` is not a group (checked on entering).
        StoreError: the store failed while checking it.

    Example::

        g = jobstatus.group(name="import")
        with children_of(g):
            for path in paths:
                load(path)
    """
    checked = ancestry.check(store_or_default(store), parent, None)
    token = _parent.set(checked)
    try:
        yield checked
    finally:
        _parent.reset(token)


def track(huey: Huey, *, store: object = None, **options: Any) -> None:
    """Record the lifecycle of every task of ``huey`` (except those with ``jobstatus=False``).

    Call it where the Huey instance is defined, so the producer records
    ``queued`` and the consumer records the rest. Calling it again replaces
    the options.

    Args:
        store: a store, URL or client for these jobs (default: the configured one).
        options: per-job options (``expires_in``, ``throttle_interval``,
            ``includes``, ...); a task's own ``jobstatus={...}`` overrides them.

    Raises:
        ConfigurationError: an unknown option or a bad value.

    Example::

        huey = SqliteHuey(filename="/tmp/huey.db")
        track(huey, includes={"status", "exception"})
    """
    _instances[huey] = spec_of_options(store, options, f"Huey {huey.name!r}")
    if huey not in _connected:
        _connected.add(huey)
        for signal, handler in _HANDLERS.items():
            huey.signal(signal)(_bound(huey, handler))
        huey.pre_execute(name=PRE_EXECUTE_HOOK)(_refuse_cancelled)


def untrack(huey: Huey) -> None:
    """Stop recording the tasks of ``huey``."""
    _instances.pop(huey, None)


def _bound(huey: Huey, handler: Callable[[JobSpec, Any, str, tuple[Any, ...]], None]) -> Any:
    ref = weakref.ref(huey)

    def receive(signal: str, task: Any, *args: Any, **_: Any) -> None:
        instance = ref()
        app = _instances.get(instance) if instance is not None else None
        if app is None:
            return  # untracked
        name = f"{type(task).__module__}.{task.name}"
        spec = task_spec(app, getattr(task, "jobstatus", True), name)
        if spec is not None:
            handler(spec, task, signal, args)

    receive.__name__ = f"jobstatus_{handler.__name__.lstrip('_')}"
    return receive


def _serialized(spec: JobSpec, task: Any) -> dict[str, Any]:
    return spec.serialized(task.id, task.args, task.kwargs, retries_left=task.retries)


# -- handlers: (spec, task, signal, extra signal args) -------------------------------


def _enqueued(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    enqueue(publisher_job(spec, task.id, _parent.get()), _serialized(spec, task))


def _executing(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    attempt = Attempt(worker_job(spec, task.id))
    attempt.start(_serialized(spec, task))  # refused: the pre-execute hook cancels the task
    _attempts.add(attempt)


def _refuse_cancelled(task: Any) -> None:
    """Huey's pre-execute hook (it runs after the executing signal): a task whose
    start was refused, because its cancel was requested, must not run."""
    attempt = _attempts.get(getattr(task, "id", None))
    if attempt is not None and attempt.done:
        raise CancelExecution("cancelled before it started", retry=False)


def _complete(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    attempt = _attempts.pop(task.id)
    if attempt is not None:
        attempt.finish()


def _failed(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    exc = args[0] if args else sys.exc_info()[1]
    attempt = _attempts.get(task.id)
    if isinstance(exc, Cancelled) or (attempt is not None and attempt.job.cancel_seen):
        task.retries = 0  # a cancelled job is never retried: Huey reads this next
    before_running = _cancelled_before_running(signal, exc)
    if signal == huey_signals.SIGNAL_CANCELED and (not task.retries or before_running):
        exc = Cancelled(task.id, str(exc) or None)  # Huey's own cancel, not retried
    if task.retries and not before_running:
        attempt = _attempts.get(task.id)
        if attempt is not None:
            attempt.exc = exc  # the retrying signal comes next and records it
        return
    attempt = _attempts.pop(task.id)
    if attempt is not None:
        attempt.finish(exc)


def _retrying(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    attempt = _attempts.pop(task.id)
    if attempt is not None:
        attempt.leave()
        attempt.requeue(attempt.exc)


def _skipped(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    exc: HueyException = (
        TaskRevoked(task.id, "revoked by Huey")
        if signal == huey_signals.SIGNAL_REVOKED
        else TaskExpired("expired")
    )
    record_outcome(spec, task.id, exc)


def _interrupted(spec: JobSpec, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    exc = TaskInterrupted("interrupted: the consumer stopped while the task ran")
    attempt = _attempts.pop(task.id) or Attempt(spec.job(task.id))
    attempt.finish(exc)  # from the consumer's main thread at shutdown, for a worker's task


def _cancelled_before_running(signal: str, exc: object) -> bool:
    """A pre-execute hook cancelled the task: Huey will not retry it, whatever its retries."""
    if signal != huey_signals.SIGNAL_CANCELED or not isinstance(exc, BaseException):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any(frame.name == "_run_pre_execute" for frame in frames)


_HANDLERS: dict[str, Callable[[JobSpec, Any, str, tuple[Any, ...]], None]] = {
    huey_signals.SIGNAL_ENQUEUED: _enqueued,
    huey_signals.SIGNAL_EXECUTING: _executing,
    huey_signals.SIGNAL_COMPLETE: _complete,
    huey_signals.SIGNAL_ERROR: _failed,
    # Sent from inside Huey's ``except`` block: the exception is ``sys.exc_info()``.
    huey_signals.SIGNAL_TIMEOUT: _failed,
    huey_signals.SIGNAL_RATE_LIMITED: _failed,
    huey_signals.SIGNAL_LOCKED: _failed,
    huey_signals.SIGNAL_CANCELED: _failed,
    huey_signals.SIGNAL_RETRYING: _retrying,
    huey_signals.SIGNAL_REVOKED: _skipped,
    huey_signals.SIGNAL_EXPIRED: _skipped,
    huey_signals.SIGNAL_INTERRUPTED: _interrupted,
}


# -- cancel: jobstatus.cancel revokes a queued task in Huey too ------------------------


def _revoke(job_id: str, record: Record) -> None:
    """The revoker (see jobstatus._cancel): Huey's ``revoke_by_id`` (once) of a queued
    task of a tracked Huey instance that knows its task name, so the consumer skips
    it (and records it ``cancelled``) instead of starting it. A running task stops
    at its next progress call."""
    name = record.get("name")
    if record.get("status") != "queued" or not isinstance(name, str):
        return
    for huey in list(_instances.keys()):
        if _knows(huey, name):
            huey.revoke_by_id(job_id, revoke_once=True)
            return


def _knows(huey: Huey, name: str) -> bool:
    """Whether ``name`` (module.task, as recorded) is one of ``huey``'s tasks."""
    try:
        huey._registry.string_to_task(name)  # Huey's own lookup of a message's task
    except HueyException:
        return False
    return True


register_revoker("huey", _revoke)
