"""RQ: a Queue, Job and Worker class that record every job's lifecycle.

Publisher::

    from jobstatus.integrations.rq import StatusQueue

    queue = StatusQueue("default", connection=Redis())
    job = queue.enqueue(export, rows)          # records queued
    jobstatus.get(job).progress.percent

Worker (one flag)::

    rq worker -w jobstatus.integrations.rq.StatusWorker default

Per-function options, where the function is declared::

    @status_options(throttle_interval=0.5, includes={"status", "exception"})
    def export(rows): ...

    @status_options(enabled=False)             # never tracked
    def ping(): ...

A job joins a group (``jobstatus.group()``) with ``status_options(parent=g)`` for
every job of a function, or at publish time through RQ's ``meta``::

    queue.enqueue(export, rows, meta={PARENT_META: g.job_id})

The worker records working, completed and failed for every job it runs, even
when the publisher used a plain ``rq.Queue``. RQ's own ``job.cancel()`` and
``send_stop_job_command`` record ``cancelled``; a job cancelled with
``jobstatus.cancel`` never runs, or stops at its next progress call, and RQ does
not retry it. The mapping of RQ's own states (retries, stopped, timed out,
killed, canceled, abandoned) is in ``docs/rq.md``.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterable
from contextlib import suppress
from contextvars import ContextVar
from typing import Any, TypeVar

from .._config import announce_store
from .._errors import Cancelled, ConfigurationError
from .._group import group
from .._job import SPEC_ATTRIBUTE, JobSpec
from .._record import Record
from .._revokers import register_revoker
from ._common import (
    Attempt,
    declaring,
    enqueue,
    missing,
    parent_id,
    publisher_job,
    record_outcome,
    task_spec,
    worker_job,
)

try:
    from redis import Redis
    from rq import Queue, Retry, Worker
    from rq.exceptions import AbandonedJobError, NoSuchJobError
    from rq.job import Job, JobStatus
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("rq", "RQ") from exc

__all__ = [
    "PARENT_META",
    "JobCanceled",
    "JobStopped",
    "RetriesExceeded",
    "StatusJob",
    "StatusQueue",
    "StatusWorker",
    "WorkHorseLost",
    "status_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The key of an RQ job's ``meta`` that names the group it joins (an id).
PARENT_META = "jobstatus_parent"

#: The ``name`` of the group record an RQ ``Group`` makes (under the Group's name).
GROUP_NAME = "rq.group"

#: RQ's states of a job that has not started.
_NOT_STARTED = frozenset({JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED})

# The Redis connections of this process's StatusQueues: where the revoker looks for a job.
_connections: weakref.WeakValueDictionary[int, Redis] = weakref.WeakValueDictionary()
# The jobs enqueue_many recorded already (RQ may enqueue each through enqueue_job).
_recorded_many: ContextVar[frozenset[str]] = ContextVar("jobstatus_rq_many", default=frozenset())


class JobStopped(Cancelled):
    """How a job stopped with ``send_stop_job_command`` ends: ``cancelled``."""


class WorkHorseLost(Exception):
    """Recorded for a job whose work horse died (killed, out of memory) or was abandoned."""


class JobCanceled(Cancelled):
    """How a job canceled with RQ's ``job.cancel()`` before it ran ends: ``cancelled``."""


class RetriesExceeded(Exception):
    """Recorded for a job that returned ``Retry`` after its last retry."""


def status_options(
    *, enabled: bool = True, store: object = None, parent: object = None, **options: Any
) -> Callable[[F], F]:
    """Set how a job function is tracked (it is not wrapped: RQ runs it as it is).

    Args:
        enabled: False never tracks this function's jobs.
        store: a store, URL or client for its jobs (default: the configured one).
        parent: the group (an id or a Status) every job of the function joins.
        options: per-job options (``expires_in``, ``throttle_interval``, ``includes``, ...).

    Raises:
        ConfigurationError: an unknown option or a bad value (a malformed ``parent`` id).

    Example::

        @status_options(throttle_interval=0.5)
        def export(rows):
            status = jobstatus.current()
            ...
    """
    return declaring("status_options", enabled=enabled, store=store, parent=parent, options=options)


def spec_of(job: Job) -> JobSpec | None:
    """How an RQ job is recorded, from its function's ``status_options``; None when it
    is not tracked."""
    try:
        function = job.func
    except Exception:  # noqa: BLE001 - a function the publisher cannot import: defaults
        function = None
    return task_spec(None, getattr(function, SPEC_ATTRIBUTE, True), _described(job)[0])


def parent_of(job: Job) -> str | None:
    """The group an RQ job joins, from its ``meta`` (None: its function's, if any)."""
    value = (job.meta or {}).get(PARENT_META)
    return value if isinstance(value, str) else None


def _has_retries_left(job: Job) -> bool:
    """Whether RQ will retry the job after this failure (``Retry`` given at enqueue)."""
    return bool(job.retries_left and job.retries_left > 0)


def _described(job: Job) -> tuple[str, Any, Any]:
    """The job's function name, args and kwargs."""
    try:
        return job.func_name or "<unknown>", job.args, job.kwargs
    except Exception:  # noqa: BLE001 - arguments the publisher cannot deserialize
        return "<unknown>", (), {}


class StatusJob(Job):
    """An RQ Job that records working, then completed, failed, cancelled or queued (a
    retry).

    It runs in the work horse: the outcome is recorded before RQ stores the
    result, so a caller that sees ``job.return_value()`` reads the finished status.
    A job whose cancel was requested before it started does not run: it raises
    :class:`jobstatus.Cancelled` (RQ marks it failed, and does not retry it).
    """

    _jobstatus_recorded = False

    def perform(self) -> Any:
        spec = spec_of(self)
        if spec is None:
            return super().perform()
        attempt = Attempt(worker_job(spec, self.id, parent_of(self)))
        runs = attempt.start(spec.serialized(self.id, *_described(self)[1:], self.origin))
        self._jobstatus_recorded = True
        if not runs:
            self.retries_left = 0  # RQ must not retry a cancelled job
            raise attempt.cancelled()
        try:
            result = super().perform()
        except BaseException as exc:
            if isinstance(exc, Exception) and _has_retries_left(self):
                if not attempt.requeue(exc):
                    self.retries_left = 0  # cancelled: RQ fails it instead of retrying
            else:
                attempt.finish(exc)
            raise
        finally:
            attempt.leave()
        if not isinstance(result, Retry) or not hasattr(self, "number_of_retries"):
            attempt.finish()  # before RQ 2.x added returning Retry, it is a plain value
        elif (self.number_of_retries or 0) >= result.max:
            attempt.finish(RetriesExceeded(f"still retrying after {result.max} retries"))
        elif not attempt.requeue():
            return None  # cancelled: a plain value, so RQ does not retry it
        return result

    def cancel(self, *args: Any, **kwargs: Any) -> Any:
        """RQ's cancel; a job that had not started is recorded ``cancelled``."""
        started = self.get_status(refresh=True) not in _NOT_STARTED
        outcome = super().cancel(*args, **kwargs)
        if not started:
            record_outcome(spec_of(self), self.id, JobCanceled(self.id, "canceled by RQ"))
        return outcome


class StatusQueue(Queue):
    """An RQ Queue of StatusJobs that records ``queued`` as a job is enqueued or scheduled.

    ``queued`` is written before the job reaches Redis, so a fast worker's
    ``working`` is never overwritten. The jobs of an RQ ``Group`` (``enqueue_many``
    with a group) are the children of a group record under the Group's name.
    ``jobstatus.cancel`` of a queued job of this queue cancels it in RQ too.
    """

    job_class = StatusJob

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _connections[id(self.connection)] = self.connection

    def enqueue_job(self, job: Job, *args: Any, **kwargs: Any) -> Job:
        if job.id not in _recorded_many.get():
            _record_queued(job, self.name)
        return super().enqueue_job(job, *args, **kwargs)

    def enqueue_many(
        self, job_datas: Iterable[Any], pipeline: Any = None, group_id: str | None = None
    ) -> list[Job]:
        """RQ's ``enqueue_many``, recording each job ``queued`` first (under an id
        chosen here when none is given); with ``group_id`` (an RQ Group), each job
        is a child of the group record of that id, made here.

        Raises:
            TypeError, ValueError: a parent in a job's ``meta`` is not a group.
        """
        datas = [_with_id(data, group_id) for data in job_datas]
        if group_id is not None:
            group(name=GROUP_NAME, group_id=group_id)
        for data in datas:
            job = Job.create(
                data.func, args=data.args, kwargs=data.kwargs, id=data.job_id,
                meta=data.meta, connection=self.connection,
            )  # fmt: skip
            _record_queued(job, self.name)
        token = _recorded_many.set(frozenset(data.job_id for data in datas))
        try:
            return list(super().enqueue_many(datas, pipeline=pipeline, group_id=group_id))
        finally:
            _recorded_many.reset(token)

    def schedule_job(self, job: Job, *args: Any, **kwargs: Any) -> Job:
        _record_queued(job, self.name)
        return super().schedule_job(job, *args, **kwargs)


def _with_id(data: Any, group_id: str | None) -> Any:
    """An ``enqueue_many`` entry with its job id, and its group as its parent."""
    if data.job_id is None:
        data = data._replace(job_id=uuid.uuid4().hex)
    if group_id is not None and not (data.meta or {}).get(PARENT_META):
        data = data._replace(meta={**(data.meta or {}), PARENT_META: group_id})
    return data


def _record_queued(job: Job, queue_name: str) -> None:
    """Record queued; a parent in ``meta`` (an id or a Status) is checked and kept as an id.

    Raises:
        TypeError, ValueError: the parent is not a group (nothing is enqueued).
    """
    if job.meta and PARENT_META in job.meta:
        job.meta[PARENT_META] = parent_id(job.meta[PARENT_META])
    spec = spec_of(job)
    if spec is not None:
        recorded = publisher_job(spec, job.id, parent_of(job))
        enqueue(recorded, spec.serialized(job.id, *_described(job)[1:], queue_name))


class StatusWorker(Worker):
    """An RQ Worker that runs StatusJobs and records what happens outside them.

    The work horse records the job's own outcome (StatusJob); this worker's
    main process records a horse that was killed, a job stopped by command,
    and jobs abandoned by a dead worker (failed, or queued when retries are left).
    A plain ``rq.job.Job`` class given to it (the CLI's default) becomes StatusJob.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("job_class") in (None, Job, "rq.job.Job"):
            kwargs["job_class"] = StatusJob
        super().__init__(*args, **kwargs)
        self.push_exc_handler(_record_abandoned)  # type: ignore[no-untyped-call]
        # Here, in the main process: the work horses it forks inherit the announcement.
        with suppress(ConfigurationError):  # its jobs will say it, with their ids
            announce_store(None, "RQ")

    def handle_job_failure(self, job: Job, *args: Any, **kwargs: Any) -> Any:
        recorded_by_the_job = isinstance(job, StatusJob) and job._jobstatus_recorded
        if not recorded_by_the_job:
            stopped = getattr(self, "_stopped_job_id", None) == job.id
            text = str(kwargs.get("exc_string") or "").strip().splitlines()
            reason = text[0] if text else "the work horse ended without an outcome"
            exc = JobStopped(job.id, reason) if stopped else WorkHorseLost(reason)
            retry = _has_retries_left(job) and not stopped
            record_outcome(spec_of(job), job.id, exc, retry=retry)
        return super().handle_job_failure(job, *args, **kwargs)


def _record_abandoned(job: Job, exc_type: type[BaseException], *_: Any) -> bool:
    """RQ's exception handler: jobs whose worker died are abandoned by its registry cleanup."""
    if exc_type is AbandonedJobError:
        exc = WorkHorseLost("abandoned: its worker died")
        record_outcome(spec_of(job), job.id, exc, retry=_has_retries_left(job))
    return True  # let the next handler run


# -- cancel: jobstatus.cancel cancels a queued job in RQ too ---------------------------


def _revoke(job_id: str, record: Record) -> None:
    """The revoker (see jobstatus._cancel): RQ's ``job.cancel()`` of a queued job of
    this process's StatusQueues, so no worker dequeues it (it is recorded
    ``cancelled`` at once). A running job is left to stop at its next progress call
    (``send_stop_job_command`` would kill its work horse, skipping its cleanup)."""
    if record.get("status") != "queued":
        return
    for connection in list(_connections.values()):
        try:
            job = StatusJob.fetch(job_id, connection=connection)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) in _NOT_STARTED:
            job.cancel()
        return


register_revoker("rq", _revoke)
