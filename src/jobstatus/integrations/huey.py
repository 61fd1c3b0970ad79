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

How each Huey signal maps to the record is in ``docs/huey.md``.
"""

from __future__ import annotations

import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._config import announce_store
from .._errors import ConfigurationError
from ._common import Running, RunningJobs, Tracking, quietly, serialized, tracking_from

try:
    from huey import Huey
    from huey import signals as huey_signals
    from huey.exceptions import HueyException
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "jobstatus.integrations.huey needs Huey: pip install 'jobstatus[huey]'"
    ) from exc

__all__ = ["TaskExpired", "TaskInterrupted", "TaskRevoked", "track", "untrack"]


class TaskRevoked(HueyException):  # type: ignore[misc]
    """Recorded as a job's exception when Huey skipped it because it was revoked."""


class TaskExpired(HueyException):  # type: ignore[misc]
    """Recorded as a job's exception when Huey skipped it because it had expired."""


class TaskInterrupted(HueyException):  # type: ignore[misc]
    """Recorded as a job's exception when the consumer stopped while the task ran."""


@dataclass
class _Attempt(Running):
    """A running task, with what a retry decision needs between two signals."""

    thread: int = 0
    pending: BaseException | None = None


_instances: weakref.WeakKeyDictionary[Huey, Tracking] = weakref.WeakKeyDictionary()
_connected: weakref.WeakSet[Huey] = weakref.WeakSet()  # untrack() keeps the handlers, idle
_running = RunningJobs()

# The failure signals that Huey sends from inside its ``except`` block, so the
# exception is ``sys.exc_info()`` (only ``error`` passes it as an argument).
_FAILURE_SIGNALS = (
    huey_signals.SIGNAL_TIMEOUT,
    huey_signals.SIGNAL_RATE_LIMITED,
    huey_signals.SIGNAL_LOCKED,
    huey_signals.SIGNAL_CANCELED,
)


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
    tracking = tracking_from({"store": store, **options}, f"Huey {huey.name!r}")
    assert tracking is not None
    _instances[huey] = tracking
    if huey not in _connected:
        _connected.add(huey)
        for signal, handler in _HANDLERS.items():
            huey.signal(signal)(_bound(huey, handler))


def untrack(huey: Huey) -> None:
    """Stop recording the tasks of ``huey``."""
    _instances.pop(huey, None)


def _bound(huey: Huey, handler: Callable[[Tracking, Any, str, tuple[Any, ...]], None]) -> Any:
    ref = weakref.ref(huey)

    def receive(signal: str, task: Any, *args: Any, **_: Any) -> None:
        instance = ref()
        tracking = _instances.get(instance) if instance is not None else None
        if tracking is None:
            return
        tracking = _task_tracking(tracking, task)
        if tracking is not None:
            handler(tracking, task, signal, args)

    receive.__name__ = f"jobstatus_{handler.__name__.lstrip('_')}"
    return receive


def _task_tracking(app: Tracking, task: Any) -> Tracking | None:
    """The instance's tracking overridden by the task's ``jobstatus`` option."""
    option = getattr(task, "jobstatus", True)
    own = tracking_from(option, f"task {task.name!r}")
    return None if own is None else app.merged(own)


def _serialized(task: Any) -> dict[str, Any]:
    return serialized(
        f"{type(task).__module__}.{task.name}",
        task.args,
        task.kwargs,
        None,
        task.id,
        retries_left=task.retries,
    )


# -- handlers: (tracking, task, signal, extra signal args) ---------------------------


def _enqueued(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    job = tracking.job(task.id)
    quietly(lambda: job.enqueued(_serialized(task)), task.id, "queued")


def _executing(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    attempt = _Attempt(tracking.job(task.id), thread=threading.get_ident())
    announce_store(attempt.job.store, "Huey")
    quietly(lambda: attempt.job.started(_serialized(task)), task.id, "working")
    attempt.token = attempt.job.enter()
    _running.add(attempt)


def _complete(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    attempt = _end(task)
    if attempt is not None:
        attempt.finish(None)


def _failed(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    exc = args[0] if args else sys.exc_info()[1]
    retry_follows = bool(task.retries) and not _cancelled_before_running(signal, exc)
    if retry_follows:
        attempt = _running.get(task.id)
        if isinstance(attempt, _Attempt):
            attempt.pending = exc  # the retrying signal comes next and records it
        return
    attempt = _end(task)
    if attempt is not None:
        attempt.finish(exc)


def _retrying(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    attempt = _end(task)
    if attempt is not None:
        attempt.requeue(attempt.pending)


def _skipped(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    exc: HueyException = (
        TaskRevoked("revoked") if signal == huey_signals.SIGNAL_REVOKED else TaskExpired("expired")
    )
    job = tracking.job(task.id)
    quietly(lambda: job.finished(exc), task.id, signal)


def _interrupted(tracking: Tracking, task: Any, signal: str, args: tuple[Any, ...]) -> None:
    exc = TaskInterrupted("interrupted: the consumer stopped while the task ran")
    attempt = _end(task)
    if attempt is not None:
        attempt.finish(exc)
    else:
        job = tracking.job(task.id)
        quietly(lambda: job.finished(exc), task.id, signal)


def _end(task: Any) -> _Attempt | None:
    """Forget the running task and leave its job context (when on its own thread)."""
    attempt = _running.pop(task.id)
    if not isinstance(attempt, _Attempt):
        return None
    # The consumer's main thread reports tasks interrupted at shutdown: the
    # context to reset belongs to the worker thread, which is gone.
    if attempt.token is not None and attempt.thread == threading.get_ident():
        attempt.job.exit(attempt.token)
    attempt.token = None
    return attempt


def _cancelled_before_running(signal: str, exc: object) -> bool:
    """A pre-execute hook cancelled the task: Huey will not retry it, whatever its retries."""
    if signal != huey_signals.SIGNAL_CANCELED or not isinstance(exc, BaseException):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any(frame.name == "_run_pre_execute" for frame in frames)


_HANDLERS: dict[str, Callable[[Tracking, Any, str, tuple[Any, ...]], None]] = {
    huey_signals.SIGNAL_ENQUEUED: _enqueued,
    huey_signals.SIGNAL_EXECUTING: _executing,
    huey_signals.SIGNAL_COMPLETE: _complete,
    huey_signals.SIGNAL_ERROR: _failed,
    **{signal: _failed for signal in _FAILURE_SIGNALS},
    huey_signals.SIGNAL_RETRYING: _retrying,
    huey_signals.SIGNAL_REVOKED: _skipped,
    huey_signals.SIGNAL_EXPIRED: _skipped,
    huey_signals.SIGNAL_INTERRUPTED: _interrupted,
}
