"""What the queue integrations share: a task's :class:`~jobstatus._job.JobSpec`, and
one attempt lifecycle that each queue drives from its own hooks.

| where             | call                           | record                                  |
|-------------------|--------------------------------|-----------------------------------------|
| the publisher     | ``enqueue(job, serialized)``   | queued                                  |
| the worker        | ``attempt.start(serialized)``  | working; False: cancelled before it     |
|                   |                                | started, and its code must not run      |
|                   | ``attempt.finish(exc)``        | completed, failed, or cancelled         |
|                   |                                | (``exc`` a ``Cancelled``, or a cancel   |
|                   |                                | seen while it ran)                      |
|                   | ``attempt.requeue(exc)``       | queued again; False: the job is being   |
|                   |                                | cancelled, so the retry must not run    |
|                   | ``attempt.leave()``            | nothing: the attempt ends without an    |
|                   |                                | outcome of its own                      |
| another process   | ``record_outcome(job, exc)``   | an outcome decided outside the run      |

The async twins are ``aenqueue``, ``astart``, ``afinish`` and ``arequeue``, for a
Job made by ``JobSpec.ajob`` (its writes run on the loop). An attempt records
one outcome (the first ``finish`` or ``requeue``), and a store error never
reaches the queue: it is logged. A task's group is given as ``parent`` to
``JobSpec.job`` / ``ajob``, on the publisher's side and on the worker's.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import Token
from typing import Any, TypeVar

from .._config import validate_options
from .._errors import ConfigurationError, StoreError
from .._job import SPEC_ATTRIBUTE, Job, JobSpec
from .._record import check_name
from .._status import Status

logger = logging.getLogger("jobstatus")

F = TypeVar("F", bound=Callable[..., Any])

# -- a task's spec, from its options ----------------------------------------------------


def spec_of_options(store: object, options: Mapping[str, Any], where: str) -> JobSpec:
    """A JobSpec of ``store`` and per-job ``options`` (those of ``jobstatus.configure``).

    Raises:
        ConfigurationError: an unknown option or a bad value, naming ``where``.
    """
    try:
        return JobSpec(store=store, options=validate_options(options))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def spec_from(value: object, where: str) -> JobSpec | None:
    """Parse a task's ``jobstatus`` option: True, False/None (None: not tracked), or a
    dict of ``store`` and per-job options.

    Raises:
        ConfigurationError: an unknown option or a bad value, naming ``where``.
    """
    if value is None or value is False:
        return None
    if value is True:
        return JobSpec()
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"the jobstatus option of {where} must be True, False or a dict of options, "
            f"not {value!r}"
        )
    options = dict(value)
    store = options.pop("store", None)
    return spec_of_options(store, options, where)


def declaring(
    where: str, *, enabled: bool = True, store: object = None, options: Mapping[str, Any]
) -> Callable[[F], F]:
    """The decorator of a queue's per-function options: it sets the function's spec
    (or False, never tracked) and returns the function itself.

    Raises:
        ConfigurationError: an unknown option or a bad value, naming ``where``.
    """
    spec = spec_of_options(store, options, where) if enabled else False

    def decorate(fn: F) -> F:
        setattr(fn, SPEC_ATTRIBUTE, spec)
        return fn

    return decorate


def declared(fn: object, default: JobSpec) -> JobSpec | None:
    """The spec a function declared; None when it opted out; ``default`` when it says nothing."""
    spec = getattr(fn, SPEC_ATTRIBUTE, None)
    if spec is False:
        return None
    return spec if isinstance(spec, JobSpec) else default


def named(spec: JobSpec, name: object) -> JobSpec:
    """``spec`` for the task called ``name``; a name a record cannot hold is left out."""
    try:
        return spec.named(check_name(name))
    except (TypeError, ValueError):
        return spec


# -- the lifecycle --------------------------------------------------------------------


@contextlib.contextmanager
def quietly(job_id: str, what: str) -> Iterator[None]:
    """Around a lifecycle write (sync or awaited): a store failure is logged, never
    raised into the queue."""
    try:
        yield
    except StoreError as exc:
        logger.warning("jobstatus could not record %s for job %r: %s", what, job_id, exc)


def enqueue(job: Job, serialized_job: Mapping[str, Any] | None = None) -> None:
    """Record ``queued`` (the publisher's side)."""
    with quietly(job.job_id, "queued"):
        job.enqueued(serialized_job)


async def aenqueue(job: Job, serialized_job: Mapping[str, Any] | None = None) -> None:
    """Async twin of :func:`enqueue`."""
    with quietly(job.job_id, "queued"):
        await job.aenqueued(serialized_job)


class Attempt:
    """One attempt of a job in this process, from the queue's start hook to its end.

    Keeping the Job from start to end means its held (throttled) changes go out
    with the outcome. An Attempt that was never started records an outcome
    decided outside the run (see :func:`record_outcome`).

    Attributes:
        job: the attempt's Job.
        exc: the exception the queue reported, kept while the queue decides
            between a retry and a failure (in a later hook).
        done: an outcome was recorded (or the start was refused): later
            ``finish`` and ``requeue`` calls record nothing.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.exc: BaseException | None = None
        self.done = False
        self._retry_allowed = True
        self._token: Token[Status | None] | None = None

    def __repr__(self) -> str:
        return f"<Attempt {self.job.job_id!r}>"

    def start(self, serialized_job: Mapping[str, Any] | None = None) -> bool:
        """Record ``working`` and make the job current; whether its code may run.

        False: a cancel was pending, the job is recorded ``cancelled`` and its code
        must not run. A store failure answers True (the job runs unrecorded).
        """
        runs = True
        with quietly(self.job.job_id, "working"):
            runs = self.job.started(serialized_job)
        return self._entered(runs)

    async def astart(self, serialized_job: Mapping[str, Any] | None = None) -> bool:
        """Async twin of :meth:`start`."""
        runs = True
        with quietly(self.job.job_id, "working"):
            runs = await self.job.astarted(serialized_job)
        return self._entered(runs)

    def _entered(self, runs: bool) -> bool:
        if runs:
            self._token = self.job.enter()
        else:
            self.done = True
        return runs

    def finish(self, exc: BaseException | None = None) -> None:
        """Record how the attempt ended (completed, failed or cancelled), once; leave."""
        if self._settle():
            with quietly(self.job.job_id, "the outcome"):
                self.job.finished(exc)
        self.leave()

    async def afinish(self, exc: BaseException | None = None) -> None:
        """Async twin of :meth:`finish`."""
        if self._settle():
            with quietly(self.job.job_id, "the outcome"):
                await self.job.afinished(exc)
        self.leave()

    def requeue(self, exc: BaseException | None = None) -> bool:
        """Record ``queued`` again for a retry, once; whether the retry may go ahead.

        False: the job is being cancelled (or ``exc`` is a ``Cancelled``): it is
        recorded ``cancelled`` and the queue must not run it again. The job stays
        current until :meth:`leave` (the task may still be unwinding).
        """
        if self._settle():
            with quietly(self.job.job_id, "the retry"):
                self._retry_allowed = self.job.retrying(exc)
        return self._retry_allowed

    async def arequeue(self, exc: BaseException | None = None) -> bool:
        """Async twin of :meth:`requeue`."""
        if self._settle():
            with quietly(self.job.job_id, "the retry"):
                self._retry_allowed = await self.job.aretrying(exc)
        return self._retry_allowed

    def leave(self) -> None:
        """The job stops being current here; nothing is recorded (once is enough)."""
        token, self._token = self._token, None
        if token is None:
            return
        # Left from another context than the one it started in (Huey's consumer
        # reports a worker thread's task at shutdown): nothing of ours is set here.
        with contextlib.suppress(ValueError, RuntimeError):
            self.job.exit(token)

    def _settle(self) -> bool:
        """Whether this is the attempt's first outcome (then it is the only one)."""
        first, self.done = not self.done, True
        return first


def record_outcome(job: Job, exc: BaseException | None, *, retry: bool = False) -> None:
    """Record an outcome decided outside the job's run (a revoke, a time limit or a
    dead worker reported by another process): failed, cancelled for a ``Cancelled``,
    or queued again when ``retry``."""
    attempt = Attempt(job)
    if retry:
        attempt.requeue(exc)
    else:
        attempt.finish(exc)


class Attempts:
    """The attempts running in this process, by job id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, Attempt] = {}

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts[attempt.job.job_id] = attempt

    def get(self, job_id: object) -> Attempt | None:
        if not isinstance(job_id, str):
            return None
        with self._lock:
            return self._attempts.get(job_id)

    def pop(self, job_id: object) -> Attempt | None:
        if not isinstance(job_id, str):
            return None
        with self._lock:
            return self._attempts.pop(job_id, None)
