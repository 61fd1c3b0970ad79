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

import functools
import logging
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .._config import store_or_default
from .._errors import Cancelled, NoCurrentJob
from .._group import ancestry, group
from .._job import JobSpec
from .._read import get as read_status
from .._record import Record
from .._revokers import register_revoker
from .._rollup import is_group
from .._status import Progress, Status
from ._common import (
    Attempt,
    Attempts,
    enqueue,
    missing,
    quietly,
    record_outcome,
    spec_from,
    spec_of_options,
    task_spec,
)

try:
    from celery import Celery, Task, current_app, signals, states
    from celery._state import connect_on_app_finalize
    from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("celery", "Celery") from exc

__all__ = ["PARENT_HEADER", "StatusTask", "headers", "track", "untrack"]

logger = logging.getLogger("jobstatus")

#: The message header that carries a job's group, given at publish time (see :func:`headers`).
PARENT_HEADER = "jobstatus_parent"

_apps: weakref.WeakKeyDictionary[Celery, JobSpec] = weakref.WeakKeyDictionary()
_attempts = Attempts()


def track(app: Celery, *, store: object = None, **options: Any) -> None:
    """Track every task of ``app`` (except those declared with ``jobstatus=False``).

    Args:
        store: a store, URL or client for this app's jobs (default: the configured one).
        options: per-job options for this app's jobs (``expires_in``,
            ``throttle_interval``, ``includes``, ...), and ``parent``, a group every
            job of the app joins; a task's own ``jobstatus={...}`` option overrides them.

    Raises:
        ConfigurationError: an unknown option or a bad value.

    Example::

        app = Celery("shop", broker="redis://")
        track(app, includes={"status", "exception"})
    """
    parent = options.pop("parent", None)
    _apps[app] = spec_of_options(store, options, f"app {app.main!r}", parent)
    if app.finalized:
        _guard_tasks(app)


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
        attempt = _attempt_of(self)
        if attempt is None:
            raise NoCurrentJob(f"task {self.name!r} is not running as a tracked job")
        return attempt.job.status

    @property
    def progress(self) -> Progress:
        """This run's live Progress (``self.status.progress``)."""
        return self.status.progress

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt = _attempt_of(self)
        if attempt is None:
            return super().__call__(*args, **kwargs)
        if attempt.done:
            _refuse(self)
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


def headers(parent: object, *, store: object = None) -> dict[str, str]:
    """The message headers that make a task's job a child of the group ``parent``,
    given at publish time (over the task's own ``parent``)::

        g = jobstatus.group(name="import")
        for path in paths:
            load.apply_async((path,), headers=headers(parent=g))

    The group is checked here, so a bad parent fails the publish, not the job.

    Args:
        parent: the group (an id or a Status).
        store: where the group is (default: the configured store; pass the task's
            own store when it has one).

    Raises:
        TypeError, ValueError: a malformed id, or a parent that does not exist or
            is not a group.
        StoreError: the store failed.
    """
    return {PARENT_HEADER: ancestry.check(store_or_default(store), parent, None)}


def _body_parts(body: object) -> tuple[Any, Any, Mapping[str, Any]]:
    """A message body's args, kwargs and embedded options (callbacks, chord, ...)."""
    if isinstance(body, (tuple, list)) and len(body) >= 2:
        embed = body[2] if len(body) >= 3 and isinstance(body[2], Mapping) else {}
        return body[0], body[1], embed
    if isinstance(body, Mapping):  # task protocol 1
        return body.get("args"), body.get("kwargs"), body
    return (), {}, {}


class _Groups:
    """The Celery groups this process made a record for (so each is made once here).

    A Celery ``group`` or a chord's header is a jobstatus group under Celery's group
    id, made by whichever process sees its first task: the publisher, or the worker
    when the publisher does not use jobstatus. ``group()`` is idempotent, so two
    processes may both make it.
    """

    KEPT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: OrderedDict[tuple[int, str], None] = OrderedDict()

    def ensure(self, spec: JobSpec, group_id: str, chord: object) -> str | None:
        """``group_id``'s record made; its id, or None when it cannot be (logged)."""
        store = store_or_default(spec.store)
        key = (id(store), group_id)
        with self._lock:
            if key in self._made:
                return group_id
        name, continuation = _chord_body(chord)
        with quietly(group_id, "the group"):
            try:
                made = group(name=name or "group", group_id=group_id, store=store)
            except (TypeError, ValueError) as exc:
                logger.warning("jobstatus could not record group %r: %s", group_id, exc)
                return None
            if continuation is not None and made.get("continuation") != continuation:
                made["continuation"] = continuation
            with self._lock:
                self._made[key] = None
                while len(self._made) > self.KEPT:
                    self._made.popitem(last=False)
            return group_id
        return None


_groups = _Groups()


def _chord_body(chord: object) -> tuple[str | None, str | None]:
    """A chord header's body: its task name and its task id (None, None for a group)."""
    if not isinstance(chord, Mapping):
        return None, None
    name = chord.get("task")
    options = chord.get("options")
    task_id = options.get("task_id") if isinstance(options, Mapping) else None
    return (
        name if isinstance(name, str) else None,
        task_id if isinstance(task_id, str) else None,
    )


def _parent_of(
    spec: JobSpec, given: object, group_id: object, group_index: object, chord: object
) -> str | None:
    """A job's group: the one given at publish time, else its Celery group's.

    A member of a Celery group or chord header has the group's id and its index in
    it; a chord's body has the id but no index: it is the group's continuation, a
    job of its own, not a member.
    """
    if isinstance(given, str) and given:
        return given
    if isinstance(group_id, str) and group_id and isinstance(group_index, int):
        return _groups.ensure(spec, group_id, chord)
    return None


def _job(spec: JobSpec, task_id: str, parent: str | None) -> Any:
    """``spec``'s Job for ``task_id`` in ``parent``; without the parent (logged) when it
    is not a group: the job is recorded anyway."""
    try:
        return spec.job(task_id, parent=parent)
    except (TypeError, ValueError) as exc:
        if parent is None:
            raise
        logger.warning("jobstatus could not record job %r under %r: %s", task_id, parent, exc)
        return spec.job(task_id)


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
    args, kwargs, embed = _body_parts(body)
    parent = _parent_of(
        spec,
        headers.get(PARENT_HEADER),
        headers.get("group"),
        headers.get("group_index"),
        embed.get("chord"),
    )
    enqueue(_job(spec, task_id, parent), spec.serialized(task_id, args, kwargs, routing_key))


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
    parent = _parent_of(
        spec,
        getattr(request, PARENT_HEADER, None),
        request.group,
        getattr(request, "group_index", None),
        request.chord,
    )
    attempt = Attempt(_job(spec, task_id, parent))
    # A refused start (a cancel was pending: recorded cancelled) leaves attempt.done
    # set; the task's guarded run (or StatusTask.__call__) then does not run its code.
    attempt.start(spec.serialized(task_id, args, kwargs, queue, retries=request.retries))
    _attempts.carry(attempt, request)  # a thread pool may start its retry before postrun


def _attempt_of(task: Any) -> Attempt | None:
    """The Attempt of the run ``task`` is in (None: not tracked, or not started)."""
    return _attempts.carried(task.request)


def _refuse(task: Any) -> None:
    """Stop a task whose start was refused (cancelled before it started): Celery
    records it revoked, as if its own revoke had reached the worker first."""
    request = task.request
    try:
        task.backend.mark_as_revoked(request.id, REFUSED, request=request)
    except Exception:  # noqa: BLE001 - the job is recorded cancelled; the result is Celery's
        logger.debug("jobstatus could not store the revoke of %r", request.id, exc_info=True)
    raise Ignore()


#: The reason in Celery's result of a task cancelled before a worker started it.
REFUSED = "cancelled (jobstatus) before it started"


def _guarded(task: Any) -> Callable[..., Any]:
    """``task.run``, refusing to run when the job's start was refused."""
    run = task.run

    @functools.wraps(run)
    def guarded_run(*args: Any, **kwargs: Any) -> Any:
        attempt = _attempt_of(task)
        if attempt is not None and attempt.done:
            _refuse(task)
        return run(*args, **kwargs)

    guarded_run.__jobstatus_guard__ = True  # type: ignore[attr-defined]
    return guarded_run


def _guard_tasks(app: Celery) -> None:
    """Guard the run of every tracked task of ``app``.

    Celery's tracer calls ``task.run`` (bound when the worker builds it, after the
    app is finalized) and no signal can stop a task from running, so a cancelled
    job's code is kept from running by wrapping ``run`` on the task object before
    that: from the app's finalize. A StatusTask checks in its ``__call__``.
    """
    for task in list(app.tasks.values()):
        if getattr(task.run, "__jobstatus_guard__", False) or spec_of(task) is None:
            continue
        task.run = _guarded(task)


def _on_finalized(sender: Celery, **_: Any) -> None:
    _guard_tasks(sender)


def _on_app_finalize(app: Celery) -> None:
    """Every app, as it is finalized (Celery's hook for shared tasks): guard its tasks
    once they are made."""
    app.on_after_finalize.connect(_on_finalized, weak=False, dispatch_uid="jobstatus.guard")


def _on_postrun(
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    attempt = _attempt_of(task) if task is not None else None
    if attempt is None:
        return
    _attempts.discard(attempt)
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
    it records why: a pool process that its SIGTERM is unwinding says nothing (as
    billiard does not report its job), so a revoke with ``terminate=True`` is
    recorded cancelled by the main process alone. Otherwise keep what was recorded,
    and fail the job only if nobody did.
    """
    if _terminating():
        return
    try:
        if read_status(attempt.job.job_id, store=attempt.job.store).is_finished:
            return
    except Exception:  # noqa: BLE001 - then record the failure below
        pass
    attempt.finish(exc or SystemExit("the task was interrupted"))


def _terminating() -> bool:
    """Whether this pool process's SIGTERM handler ran (billiard 4.3 and later tell)."""
    try:
        from billiard.common import terminate_handler_fired
    except ImportError:  # pragma: no cover - an older billiard: the read above decides
        return False
    return bool(terminate_handler_fired())


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
    task_id = getattr(request, "id", None)
    if expired:  # not a cancel: the job missed its deadline
        _record_elsewhere(sender, task_id, TaskRevokedError("expired"), retry=False)
        return
    # Celery's own revoke (with terminate or not) is a cancel: recorded cancelled (SPEC 4),
    # unless the job already ended (a retry or redelivery of a job that was cancelled).
    if not isinstance(task_id, str) or _ended(task_id, sender):
        return
    how = f"terminated by signal {signum}" if terminated else "revoked"
    _record_elsewhere(sender, task_id, Cancelled(task_id, f"{how} by Celery"), retry=False)


def _ended(task_id: str, task: Any) -> bool:
    """Whether ``task_id``'s record is finished (False when it cannot be read)."""
    spec = spec_of(task)
    if spec is None:
        return False
    try:
        return read_status(task_id, store=spec.store).is_finished
    except Exception:  # noqa: BLE001 - then record the outcome
        return False


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


# -- cancel: jobstatus.cancel revokes a task through Celery (any process) ---------------


def _revoke(job_id: str, record: Record) -> None:
    """The revoker (see jobstatus._cancel): Celery's ``revoke`` of a job whose task one
    of this process's apps knows, so a queued task never reaches a worker's pool.

    A running task is not terminated (it stops at its next progress call, with its
    cleanup); the revoke still keeps a redelivery of it from running.
    """
    name = record.get("name")
    if not isinstance(name, str) or record.get("status") not in ("queued", "working"):
        return
    if is_group(record):  # a chord's header is named after its body: not a task
        return
    task = _published_task(current_app._get_current_object(), name)
    if task is None or spec_of(task) is None:
        return
    task.app.control.revoke(job_id)


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
    connect_on_app_finalize(_on_app_finalize)
    register_revoker("celery", _revoke)


_connect()
