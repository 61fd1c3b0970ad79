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

from .._config import announce_store
from .._errors import ConfigurationError, NoCurrentJob
from .._job import Job
from .._read import get as read_status
from .._status import Progress, Status
from ._common import Running, RunningJobs, Tracking, quietly, serialized, tracking_from

try:
    from celery import Celery, Task, current_app, signals, states
    from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "jobstatus.integrations.celery needs Celery: pip install 'jobstatus[celery]'"
    ) from exc

__all__ = ["StatusTask", "track", "untrack"]

_apps: weakref.WeakKeyDictionary[Celery, Tracking] = weakref.WeakKeyDictionary()
_running = RunningJobs()


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
    tracking = tracking_from({"store": store, **options}, f"app {app.main!r}")
    assert tracking is not None
    _apps[app] = tracking


def untrack(app: Celery) -> None:
    """Stop tracking every task of ``app`` (tasks opted in one by one stay tracked)."""
    _apps.pop(app, None)


def tracking_of(task: Any) -> Tracking | None:
    """How ``task`` is tracked, or None when it is not."""
    if task is None:
        return None
    own_setting = getattr(task, "jobstatus", None)
    if own_setting is False:
        return None
    own = tracking_from(own_setting, f"task {getattr(task, 'name', task)!r}")
    app_tracking = _apps.get(getattr(task, "app", None))
    if app_tracking is None:
        return own
    return app_tracking if own is None else app_tracking.merged(own)


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
        tracking_from(cls.__dict__.get("jobstatus", True), f"task class {cls.__name__}")

    @property
    def status(self) -> Status:
        """This run's live Status (as ``jobstatus.current()``).

        Raises:
            NoCurrentJob: the task is not running as a tracked job.
        """
        running = _running.get(self.request.id)
        if running is None:
            raise NoCurrentJob(f"task {self.name!r} is not running as a tracked job")
        return running.job.status

    @property
    def progress(self) -> Progress:
        """This run's live Progress (``self.status.progress``)."""
        return self.status.progress

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        running = _running.get(self.request.id)
        if running is None:
            return super().__call__(*args, **kwargs)
        # Celery's own __call__ pushes a request without the id; run() keeps
        # the worker's request, so self.request.id works inside the task.
        try:
            result = self.run(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            running.finish(exc)
            raise
        running.finish(None)
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
    running = _running.get(task_id)
    if running is not None:
        # The running task publishes itself again: a retry (or a replace). Record
        # queued before the message can reach a worker that starts it.
        running.requeue(sys.exc_info()[1])
        return
    app = current_app._get_current_object()
    task = _published_task(app, name)
    tracking = tracking_of(task) if task is not None else _apps.get(app)
    if tracking is None:
        return
    args, kwargs = _body_args(body)
    job = tracking.job(task_id)
    quietly(
        lambda: job.enqueued(serialized(name, args, kwargs, routing_key, task_id)),
        task_id,
        "queued",
    )


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
    tracking = tracking_of(task)
    if tracking is None or not isinstance(task_id, str):
        return
    job = tracking.job(task_id)
    request = task.request
    queue = (request.delivery_info or {}).get("routing_key")
    description = serialized(task.name, args, kwargs, queue, task_id, retries=request.retries)
    announce_store(job.store, "Celery")
    quietly(lambda: job.started(description), task_id, "working")
    _running.add(Running(job, job.enter()))


def _on_postrun(
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    running = _running.pop(task_id)
    if running is None:
        return
    try:
        _record_end(running, state, retval, requeue_works=bool(getattr(task, "acks_late", False)))
    finally:
        if running.token is not None:
            running.job.exit(running.token)


def _record_end(running: Running, state: str | None, retval: Any, *, requeue_works: bool) -> None:
    exc = retval if isinstance(retval, BaseException) else None
    if state == states.RETRY:
        running.requeue(getattr(exc, "exc", None))
    elif state == states.REJECTED and getattr(exc, "requeue", False) and requeue_works:
        # Only a message not acknowledged yet (acks_late) goes back to the queue.
        running.requeue(exc)
    elif state in (states.SUCCESS, states.IGNORED):
        running.finish(None)
    elif state in (states.FAILURE, states.REJECTED):
        running.finish(exc)
    else:
        _interrupted(running, sys.exc_info()[1])


def _interrupted(running: Running, exc: BaseException | None) -> None:
    """The task was stopped by a BaseException (SystemExit, KeyboardInterrupt, ...).

    When the worker's main process stopped it (a hard time limit, a terminate),
    it has already recorded why; keep that, and fail the job only if nobody did.
    """
    try:
        if read_status(running.job.job_id, store=running.job.store).is_finished:
            return
    except Exception:  # noqa: BLE001 - then record the failure below
        pass
    running.finish(exc or SystemExit("the task was interrupted"))


# -- outcomes the worker's main process reports (time limits, lost or revoked) --------


def _record_elsewhere(task: Any, task_id: object, exc: BaseException | None, retry: bool) -> None:
    """Record an outcome for a task not running in this process."""
    if not isinstance(task_id, str) or _running.get(task_id) is not None:
        return  # the process running it records its own outcome
    tracking = tracking_of(task)
    if tracking is None:
        return
    job = tracking.job(task_id)
    if retry:
        quietly(lambda: job.retrying(exc), task_id, "the retry")
    else:
        quietly(lambda: job.finished(exc), task_id, "the outcome")


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
    if expired:
        reason = "expired"
    elif terminated:
        reason = f"terminated by signal {signum}"
    else:
        reason = "revoked"
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
    quietly(lambda: Job(task_id).finished(exc), task_id, "the outcome")


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
