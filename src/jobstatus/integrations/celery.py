"""Celery: record every tracked task's lifecycle, from publishing to its end.

Three ways to opt in, which combine (the task's options override the app's)::

    from jobstatus.integrations.celery import StatusTask, track

    app = Celery("shop", broker="redis://")
    track(app)                                    # every task of the app

    @app.task(base=StatusTask, bind=True)         # one task, with self.status
    def export(self, rows): ...

    @app.task(jobstatus={"throttle_interval": 0.5, "includes": {"status", "exception"}})
    def resize(path): ...                         # one task, with per-task options

A task declared with ``jobstatus=False`` is never tracked.

Where each state is written (the publisher, the worker child running the task,
or the worker's main process) is in ``docs/celery.md``. The handlers are
Celery signals, connected when this module is imported, so importing it in the
module that defines the app is enough for both the web process and the worker.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping
from typing import Any

from .._errors import NoCurrentJob
from .._job import JobSpec
from .._read import get as read_status
from .._status import Progress, Status
from ._common import (
    Attempt,
    Attempts,
    enqueue,
    missing,
    record_outcome,
    spec_from,
    spec_of_options,
    task_spec,
)

try:
    from celery import Celery, Task, current_app, signals, states
    from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("celery", "Celery") from exc

__all__ = ["StatusTask", "track", "untrack"]

_apps: weakref.WeakKeyDictionary[Celery, JobSpec] = weakref.WeakKeyDictionary()
_attempts = Attempts()


def track(app: Celery, *, store: object = None, **options: Any) -> None:
    """Track every task of ``app`` (except those declared with ``jobstatus=False``).

    Args:
        store: a store, URL or client for this app's jobs (default: the configured one).
        options: per-job options for this app's jobs (``expires_in``,
            ``throttle_interval``, ``includes``, ...); a task's own
            ``jobstatus={...}`` option overrides them.

    Raises:
        ConfigurationError: an unknown option or a bad value.

    Example::

        app = Celery("shop", broker="redis://")
        track(app, includes={"status", "exception"})
    """
    _apps[app] = spec_of_options(store, options, f"app {app.main!r}")


def untrack(app: Celery) -> None:
    """Stop tracking every task of ``app`` (tasks opted in one by one stay tracked)."""
    _apps.pop(app, None)


def spec_of(task: Any) -> JobSpec | None:
    """How ``task``'s jobs are recorded, or None when it is not tracked."""
    app = _apps.get(getattr(task, "app", None))
    return task_spec(app, getattr(task, "jobstatus", None), getattr(task, "name", task))


class StatusTask(Task):  # type: ignore[misc]
    """A task base class that tracks the task and gives it ``self.status``.

    Per-task options go in the ``jobstatus`` task option::

        @app.task(base=StatusTask, bind=True, jobstatus={"throttle_interval": 0.5})
        def export(self, rows):
            self.progress.total = len(rows)
            for row in rows:
                self.progress.increment()

    The outcome is recorded before Celery stores the task's result, so a
    caller whose ``AsyncResult.get()`` returned reads the finished status.
    Pass ``task_cls=StatusTask`` to ``Celery(...)`` to make it every task's base.
    """

    jobstatus: bool | Mapping[str, Any] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec_from(cls.__dict__.get("jobstatus", True), f"task class {cls.__name__}")

    @property
    def status(self) -> Status:
        """This run's live Status (as ``jobstatus.current()``).

        Raises:
            NoCurrentJob: the task is not running as a tracked job.
        """
        attempt = _attempts.get(self.request.id)
        if attempt is None:
            raise NoCurrentJob(f"task {self.name!r} is not running as a tracked job")
        return attempt.job.status

    @property
    def progress(self) -> Progress:
        """This run's live Progress (``self.status.progress``)."""
        return self.status.progress

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt = _attempts.get(self.request.id)
        if attempt is None:
            return super().__call__(*args, **kwargs)
        # Celery's own __call__ pushes a request without the id; run() keeps
        # the worker's request, so self.request.id works inside the task.
        try:
            result = self.run(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            attempt.finish(exc)
            raise
        attempt.finish()
        return result


# -- publishing (any process) ---------------------------------------------------------


def _body_args(body: object) -> tuple[Any, Any]:
    if isinstance(body, (tuple, list)) and len(body) >= 2:
        return body[0], body[1]
    if isinstance(body, Mapping):  # task protocol 1
        return body.get("args"), body.get("kwargs")
    return (), {}


def _on_publish(
    sender: object = None,
    body: object = None,
    headers: Mapping[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    headers = headers or {}
    task_id = headers.get("id")
    name = headers.get("task") or sender
    if not isinstance(task_id, str) or not isinstance(name, str):
        return
    attempt = _attempts.get(task_id)
    if attempt is not None:
        # The running task publishes itself again: a retry (or a replace). Record
        # queued before the message can reach a worker that starts it.
        attempt.requeue(sys.exc_info()[1])
        return
    app = current_app._get_current_object()
    task = _published_task(app, name)
    spec = spec_of(task) if task is not None else task_spec(_apps.get(app), None, name)
    if spec is None:
        return
    args, kwargs = _body_args(body)
    enqueue(spec.job(task_id), spec.serialized(task_id, args, kwargs, routing_key))


def _published_task(app: Celery, name: str) -> Any:
    """The task called ``name`` in the first of these apps that has it: the current
    app if it is tracked, the tracked apps, the current app; None if none has it.

    Celery's current app is per thread: a thread other than the one that made
    the app (a threaded web server's) sees Celery's default app, which has its
    own untracked copy of every shared task, so the tracked apps come first.
    """
    tracked = list(_apps.keys())
    for candidate in ([app] if app in _apps else []) + tracked + [app]:
        if candidate.finalized or candidate.autofinalize:  # else .tasks raises
            task = candidate.tasks.get(name)
            if task is not None:
                return task
    return None


# -- running (the worker process that runs the task) ----------------------------------


def _on_prerun(
    task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    spec = spec_of(task)
    if spec is None or not isinstance(task_id, str):
        return
    request = task.request
    queue = (request.delivery_info or {}).get("routing_key")
    attempt = Attempt(spec.job(task_id))
    attempt.start(spec.serialized(task_id, args, kwargs, queue, retries=request.retries))
    _attempts.add(attempt)


def _on_postrun(
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    attempt = _attempts.pop(task_id)
    if attempt is None:
        return
    try:
        _record_end(attempt, state, retval, requeue_works=bool(getattr(task, "acks_late", False)))
    finally:
        attempt.leave()


def _record_end(attempt: Attempt, state: str | None, retval: Any, *, requeue_works: bool) -> None:
    exc = retval if isinstance(retval, BaseException) else None
    if state == states.RETRY:
        attempt.requeue(getattr(exc, "exc", None))
    elif state == states.REJECTED and getattr(exc, "requeue", False) and requeue_works:
        # Only a message not acknowledged yet (acks_late) goes back to the queue.
        attempt.requeue(exc)
    elif state in (states.SUCCESS, states.IGNORED):
        attempt.finish()
    elif state in (states.FAILURE, states.REJECTED):
        attempt.finish(exc)
    else:
        _interrupted(attempt, sys.exc_info()[1])


def _interrupted(attempt: Attempt, exc: BaseException | None) -> None:
    """The task was stopped by a BaseException (SystemExit, KeyboardInterrupt, ...).

    When the worker's main process stopped it (a hard time limit, a terminate),
    it has already recorded why; keep that, and fail the job only if nobody did.
    """
    try:
        if read_status(attempt.job.job_id, store=attempt.job.store).is_finished:
            return
    except Exception:  # noqa: BLE001 - then record the failure below
        pass
    attempt.finish(exc or SystemExit("the task was interrupted"))


# -- outcomes the worker's main process reports (time limits, lost or revoked) --------


def _record_elsewhere(task: Any, task_id: object, exc: BaseException | None, retry: bool) -> None:
    """Record an outcome for a task not running in this process."""
    if not isinstance(task_id, str) or _attempts.get(task_id) is not None:
        return  # the process running it records its own outcome
    record_outcome(spec_of(task), task_id, exc, retry=retry)


def _on_failure(
    sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any
) -> None:
    _record_elsewhere(sender, task_id, exception, retry=False)


def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    exc = getattr(reason, "exc", None) if reason is not None else None
    _record_elsewhere(sender, getattr(request, "id", None), exc, retry=True)


def _on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: object = None,
    expired: bool = False,
    **_: Any,
) -> None:
    reason = "expired" if expired else f"terminated by signal {signum}" if terminated else "revoked"
    _record_elsewhere(sender, getattr(request, "id", None), TaskRevokedError(reason), retry=False)


def _fail_if_recorded(task_id: object, exc: BaseException) -> None:
    """A message the worker throws away: fail its record if the publisher made one."""
    if not isinstance(task_id, str):
        return
    try:
        if not read_status(task_id).exists:
            return
    except Exception:  # noqa: BLE001 - a broken store must not break the consumer
        return
    record_outcome(JobSpec(), task_id, exc)


def _on_unknown(id: object = None, exc: BaseException | None = None, **_: Any) -> None:  # noqa: A002
    _fail_if_recorded(id, exc or Reject("unknown task"))


def _on_rejected(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    _fail_if_recorded(headers.get("id"), exc or Reject("message rejected"))


def _connect() -> None:
    handlers = (
        (signals.before_task_publish, _on_publish),
        (signals.task_prerun, _on_prerun),
        (signals.task_postrun, _on_postrun),
        (signals.task_failure, _on_failure),
        (signals.task_retry, _on_retry),
        (signals.task_revoked, _on_revoked),
        (signals.task_unknown, _on_unknown),
        (signals.task_rejected, _on_rejected),
    )
    for signal, handler in handlers:
        signal.connect(handler, weak=False, dispatch_uid=f"jobstatus.{handler.__name__}")


_connect()
