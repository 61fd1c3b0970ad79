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

from .._job import SPEC_ATTRIBUTE, JobSpec
from ._common import Attempt, declaring, enqueue, missing, record_outcome, task_spec

try:
    from rq import Queue, Retry, Worker
    from rq.exceptions import AbandonedJobError
    from rq.job import Job
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("rq", "RQ") from exc

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
    return declaring("status_options", enabled=enabled, store=store, options=options)


def spec_of(job: Job) -> JobSpec | None:
    """How an RQ job is recorded, from its function's ``status_options``; None when it
    is not tracked."""
    try:
        function = job.func
    except Exception:  # noqa: BLE001 - a function the publisher cannot import: defaults
        function = None
    return task_spec(None, getattr(function, SPEC_ATTRIBUTE, True), _described(job)[0])


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
    """An RQ Job that records working, then completed, failed or queued (a retry).

    It runs in the work horse: the outcome is recorded before RQ stores the
    result, so a caller that sees ``job.return_value()`` reads the finished status.
    """

    _jobstatus_recorded = False

    def perform(self) -> Any:
        spec = spec_of(self)
        if spec is None:
            return super().perform()
        attempt = Attempt(spec.job(self.id))
        attempt.start(spec.serialized(self.id, *_described(self)[1:], self.origin))
        self._jobstatus_recorded = True
        try:
            result = super().perform()
        except BaseException as exc:
            if isinstance(exc, Exception) and _has_retries_left(self):
                attempt.requeue(exc)
            else:
                attempt.finish(exc)
            raise
        finally:
            attempt.leave()
        if not isinstance(result, Retry) or not hasattr(self, "number_of_retries"):
            attempt.finish()  # before RQ 2.x added returning Retry, it is a plain value
        elif (self.number_of_retries or 0) >= result.max:
            attempt.finish(RetriesExceeded(f"still retrying after {result.max} retries"))
        else:
            attempt.requeue()
        return result

    def cancel(self, *args: Any, **kwargs: Any) -> Any:
        outcome = super().cancel(*args, **kwargs)
        record_outcome(spec_of(self), self.id, JobCanceled("canceled"))
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
    spec = spec_of(job)
    if spec is not None:
        enqueue(spec.job(job.id), spec.serialized(job.id, *_described(job)[1:], queue_name))


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
            retry = _has_retries_left(job) and not stopped
            record_outcome(spec_of(job), job.id, exc, retry=retry)
        return super().handle_job_failure(job, *args, **kwargs)


def _record_abandoned(job: Job, exc_type: type[BaseException], *_: Any) -> bool:
    """RQ's exception handler: jobs whose worker died are abandoned by its registry cleanup."""
    if exc_type is AbandonedJobError:
        exc = WorkHorseLost("abandoned: its worker died")
        record_outcome(spec_of(job), job.id, exc, retry=_has_retries_left(job))
    return True  # let the next handler run
