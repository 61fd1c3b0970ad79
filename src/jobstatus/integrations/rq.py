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

The worker records working, completed and failed for every job it runs, even
when the publisher used a plain ``rq.Queue``. The mapping of RQ's own states
(retries, stopped, timed out, killed, canceled, abandoned) is in ``docs/rq.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._config import announce_store
from .._errors import ConfigurationError
from ._common import Running, Tracking, quietly, serialized, tracking_from

try:
    from rq import Queue, Retry, Worker
    from rq.exceptions import AbandonedJobError
    from rq.job import Job
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "jobstatus.integrations.rq needs RQ: pip install 'jobstatus[rq]'"
    ) from exc

__all__ = [
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
OPTIONS_ATTRIBUTE = "__jobstatus__"


class JobStopped(Exception):
    """Recorded for a job stopped with ``send_stop_job_command``."""


class WorkHorseLost(Exception):
    """Recorded for a job whose work horse died (killed, out of memory) or was abandoned."""


class JobCanceled(Exception):
    """Recorded for a job canceled before it ran (``job.cancel()``)."""


class RetriesExceeded(Exception):
    """Recorded for a job that returned ``Retry`` after its last retry."""


def status_options(
    *, enabled: bool = True, store: object = None, **options: Any
) -> Callable[[F], F]:
    """Set how a job function is tracked (it is not wrapped: RQ runs it as it is).

    Args:
        enabled: False never tracks this function's jobs.
        store: a store, URL or client for its jobs (default: the configured one).
        options: per-job options (``expires_in``, ``throttle_interval``, ``includes``, ...).

    Raises:
        ConfigurationError: an unknown option or a bad value.

    Example::

        @status_options(throttle_interval=0.5)
        def export(rows):
            status = jobstatus.current()
            ...
    """
    tracking = tracking_from({"store": store, **options} if enabled else False, "status_options")

    def decorate(fn: F) -> F:
        setattr(fn, OPTIONS_ATTRIBUTE, tracking if tracking is not None else False)
        return fn

    return decorate


def tracking_of(job: Job) -> Tracking | None:
    """How an RQ job is tracked, from its function's ``status_options``; None when it is not."""
    try:
        setting = getattr(job.func, OPTIONS_ATTRIBUTE, None)
    except Exception:  # noqa: BLE001 - a function the publisher cannot import: defaults
        setting = None
    if setting is False:
        return None
    return setting if isinstance(setting, Tracking) else Tracking()


def _has_retries_left(job: Job) -> bool:
    """Whether RQ will retry the job after this failure (``Retry`` given at enqueue)."""
    return bool(job.retries_left and job.retries_left > 0)


def _description(job: Job) -> dict[str, Any]:
    try:
        name, args, kwargs = job.func_name, job.args, job.kwargs
    except Exception:  # noqa: BLE001 - arguments the publisher cannot deserialize
        name, args, kwargs = "<unknown>", (), {}
    return serialized(name or "<unknown>", args, kwargs, job.origin, job.id)


class StatusJob(Job):
    """An RQ Job that records working, then completed, failed or queued (a retry).

    It runs in the work horse: the outcome is recorded before RQ stores the
    result, so a caller that sees ``job.return_value()`` reads the finished status.
    """

    _jobstatus_recorded = False

    def perform(self) -> Any:
        tracking = tracking_of(self)
        if tracking is None:
            return super().perform()
        running = Running(tracking.job(self.id))
        announce_store(running.job.store, "RQ")
        quietly(lambda: running.job.started(_description(self)), self.id, "working")
        running.token = running.job.enter()
        self._jobstatus_recorded = True
        try:
            result = super().perform()
        except BaseException as exc:
            if isinstance(exc, Exception) and _has_retries_left(self):
                running.requeue(exc)
            else:
                running.finish(exc)
            raise
        finally:
            running.job.exit(running.token)
        if not isinstance(result, Retry) or not hasattr(self, "number_of_retries"):
            running.finish(None)  # before RQ 2.x added returning Retry, it is a plain value
        elif (self.number_of_retries or 0) >= result.max:
            running.finish(RetriesExceeded(f"still retrying after {result.max} retries"))
        else:
            running.requeue(None)
        return result

    def cancel(self, *args: Any, **kwargs: Any) -> Any:
        outcome = super().cancel(*args, **kwargs)
        tracking = tracking_of(self)
        if tracking is not None:
            job = tracking.job(self.id)
            quietly(lambda: job.finished(JobCanceled("canceled")), self.id, "the cancel")
        return outcome


class StatusQueue(Queue):
    """An RQ Queue of StatusJobs that records ``queued`` as a job is enqueued or scheduled.

    ``queued`` is written before the job reaches Redis, so a fast worker's
    ``working`` is never overwritten.
    """

    job_class = StatusJob

    def enqueue_job(self, job: Job, *args: Any, **kwargs: Any) -> Job:
        _record_queued(job, self.name)
        return super().enqueue_job(job, *args, **kwargs)

    def schedule_job(self, job: Job, *args: Any, **kwargs: Any) -> Job:
        _record_queued(job, self.name)
        return super().schedule_job(job, *args, **kwargs)


def _record_queued(job: Job, queue_name: str) -> None:
    tracking = tracking_of(job)
    if tracking is None:
        return
    description = _description(job)
    description["queue"] = queue_name
    status_job = tracking.job(job.id)
    quietly(lambda: status_job.enqueued(description), job.id, "queued")


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

    def handle_job_failure(self, job: Job, *args: Any, **kwargs: Any) -> Any:
        recorded_by_the_job = isinstance(job, StatusJob) and job._jobstatus_recorded
        if not recorded_by_the_job:
            stopped = getattr(self, "_stopped_job_id", None) == job.id
            text = str(kwargs.get("exc_string") or "").strip().splitlines()
            reason = text[0] if text else "the work horse ended without an outcome"
            exc = JobStopped(reason) if stopped else WorkHorseLost(reason)
            _record_outside(job, exc, retry=_has_retries_left(job) and not stopped)
        return super().handle_job_failure(job, *args, **kwargs)


def _record_outside(job: Job, exc: BaseException, *, retry: bool) -> None:
    """Record an outcome decided outside the job's own run."""
    tracking = tracking_of(job)
    if tracking is None:
        return
    status_job = tracking.job(job.id)
    if retry:
        quietly(lambda: status_job.retrying(exc), job.id, "the retry")
    else:
        quietly(lambda: status_job.finished(exc), job.id, "the outcome")


def _record_abandoned(job: Job, exc_type: type[BaseException], *_: Any) -> bool:
    """RQ's exception handler: jobs whose worker died are abandoned by its registry cleanup."""
    if exc_type is AbandonedJobError:
        _record_outside(
            job, WorkHorseLost("abandoned: its worker died"), retry=_has_retries_left(job)
        )
    return True  # let the next handler run
