"""What the queue integrations share: a task's :class:`~jobstatus._job.JobSpec`, and
one attempt lifecycle that each queue drives from its own hooks.

- The publisher: ``enqueue(job, serialized)`` records queued.
- The worker: ``attempt.start(serialized)`` records working, or answers False
  when a cancel was pending (the job is recorded cancelled: its code must not run);
  ``finish(exc)`` records completed, failed or cancelled; ``requeue(exc)`` records
  queued again for a retry, or answers False when the job is being cancelled (the
  queue must not retry it); ``leave()`` ends the attempt with no outcome of its own.
- Another process: ``record_outcome(spec, job_id, exc)`` records an outcome decided
  outside the run (a revoke, a time limit, a dead worker).

``aenqueue``, ``astart``, ``afinish`` and ``arequeue`` are the async twins, for a
Job made by ``JobSpec.ajob``. An attempt records one outcome, and a store error
never reaches the queue (it is logged). A task's group is the ``parent`` of its
spec (its option decorator's ``parent=``) or one given at publish time: the
publisher checks it (:func:`publisher_job`: a bad parent raises there), the
worker repeats it (:func:`worker_job`: one that fails its checks there is logged
and dropped, never raised into the queue).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import Token
from typing import Any, TypeVar

from .._config import announce_store, validate_options
from .._errors import Cancelled, ConfigurationError, StoreError
from .._job import SPEC_ATTRIBUTE, Job, JobSpec
from .._record import validate_job_id
from .._status import Status

logger = logging.getLogger("jobstatus")

F = TypeVar("F", bound=Callable[..., Any])


def missing(queue: str, library: str) -> ConfigurationError:
    """The error of an integration imported without its queue library."""
    return ConfigurationError(
        f"jobstatus.integrations.{queue} needs {library}: pip install 'jobstatus[{queue}]'"
    )


# -- a task's spec, from its options ----------------------------------------------------


def spec_of_options(
    store: object, options: Mapping[str, Any], where: str, parent: object = None
) -> JobSpec:
    """A JobSpec of ``store``, per-job ``options`` (those of ``jobstatus.configure``) and
    the group every job joins, ``parent`` (an id or a Status; it must exist as a group
    when a job is published or starts).

    Raises:
        ConfigurationError: an unknown option or a bad value (a malformed parent id
            too), naming ``where``.
    """
    try:
        checked = validate_options(options)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    if parent is not None and not isinstance(parent, Status):
        try:
            validate_job_id(parent)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: parent: {exc}") from None
    return JobSpec(store=store, options=checked, parent=parent)


def parent_id(parent: object) -> str | None:
    """The id of a ``parent`` given as an id or a Status (checked for its form only:
    whether it is a group is checked when a job joins it); None for None.

    Raises:
        TypeError, ValueError: a malformed id.
    """
    if parent is None:
        return None
    return parent.job_id if isinstance(parent, Status) else validate_job_id(parent)


def publisher_job(spec: JobSpec, job_id: str, parent: object = None) -> Job:
    """The Job a publisher records ``queued`` with; ``parent`` (given at publish time)
    over the spec's. A store that fails while the parent is checked is logged and the
    job is recorded without it.

    Raises:
        TypeError, ValueError: the parent is not a group, would make a cycle or
            nests too deep (nothing is published).
    """
    try:
        return spec.job(job_id, parent=parent)
    except StoreError as exc:
        logger.warning("jobstatus could not check the group of job %r: %s", job_id, exc)
        return JobSpec(spec.name, spec.store, spec.options).job(job_id)


async def apublisher_job(spec: JobSpec, job_id: str, parent: object = None) -> Job:
    """Async twin of :func:`publisher_job`."""
    try:
        return await spec.ajob(job_id, parent=parent)
    except StoreError as exc:
        logger.warning("jobstatus could not check the group of job %r: %s", job_id, exc)
        return await JobSpec(spec.name, spec.store, spec.options).ajob(job_id)


def worker_job(spec: JobSpec, job_id: str, parent: object = None) -> Job:
    """The Job a worker runs; ``parent`` (from the message) over the spec's. A parent
    that fails its checks here (the group expired, the store failed) is logged and
    dropped: the job runs, and its record keeps the parent the publisher wrote."""
    try:
        return spec.job(job_id, parent=parent)
    except (TypeError, ValueError, StoreError) as exc:
        logger.warning("jobstatus could not record the group of job %r: %s", job_id, exc)
        return JobSpec(spec.name, spec.store, spec.options).job(job_id)


async def aworker_job(spec: JobSpec, job_id: str, parent: object = None) -> Job:
    """Async twin of :func:`worker_job`."""
    try:
        return await spec.ajob(job_id, parent=parent)
    except (TypeError, ValueError, StoreError) as exc:
        logger.warning("jobstatus could not record the group of job %r: %s", job_id, exc)
        return await JobSpec(spec.name, spec.store, spec.options).ajob(job_id)


def spec_from(value: object, where: str) -> JobSpec | None:
    """Parse a task's ``jobstatus`` option: True, False/None (None: not tracked), a dict
    of ``store``, ``parent`` (the group of every job of the task) and per-job options,
    or the JobSpec an option decorator set.

    Raises:
        ConfigurationError: an unknown option or a bad value, naming ``where``.
    """
    if value is None or value is False:
        return None
    if value is True:
        return JobSpec()
    if isinstance(value, JobSpec):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"the jobstatus option of {where} must be True, False or a dict of options, "
            f"not {value!r}"
        )
    options = dict(value)
    store = options.pop("store", None)
    parent = options.pop("parent", None)
    return spec_of_options(store, options, where, parent)


def task_spec(app: JobSpec | None, option: object, name: object) -> JobSpec | None:
    """A task's spec: its app's (or worker's, or middleware's) overridden by the task's
    ``jobstatus`` option, named after the task; None when the option is False, or when
    there is neither.

    Raises:
        ConfigurationError: a bad option, naming the task.
    """
    own = spec_from(option, f"task {name!r}")
    if app is not None and option is not False:
        own = app if own is None else app.merged(own)
    return None if own is None else own.named(name)


def declaring(
    where: str,
    *,
    enabled: bool = True,
    store: object = None,
    parent: object = None,
    options: Mapping[str, Any],
) -> Callable[[F], F]:
    """The decorator of a queue's per-function options: it sets the function's spec
    (or False, never tracked) and returns the function itself. ``parent`` is the
    group every job of the function joins.

    Raises:
        ConfigurationError: an unknown option or a bad value, naming ``where``.
    """
    spec = spec_of_options(store, options, where, parent) if enabled else False

    def decorate(fn: F) -> F:
        setattr(fn, SPEC_ATTRIBUTE, spec)
        return fn

    return decorate


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

    The Job is kept from start to end, so its held (throttled) changes go out with
    the outcome. An Attempt never started here records an outcome decided elsewhere.

    Attributes:
        exc: the exception the queue reported, kept until a later hook decides
            between a retry and a failure.
        done: an outcome was recorded (or the start refused): no other will be.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.exc: BaseException | None = None
        self.done = False
        self._retry_allowed = True
        self._token: Token[Status | None] | None = None

    def start(self, serialized_job: Mapping[str, Any] | None = None) -> bool:
        """Record ``working`` and make the job current; whether its code may run."""
        announce_store(self.job.store)
        with quietly(self.job.job_id, "working"):
            return self._entered(self.job.started(serialized_job))
        return self._entered(True)  # the store failed: the job runs unrecorded

    async def astart(self, serialized_job: Mapping[str, Any] | None = None) -> bool:
        """Async twin of :meth:`start`."""
        announce_store(self.job.store)
        with quietly(self.job.job_id, "working"):
            return self._entered(await self.job.astarted(serialized_job))
        return self._entered(True)

    def cancelled(self) -> Cancelled:
        """The exception that stops a job whose start was refused: its cancel was
        requested, and it is recorded ``cancelled`` (``raise attempt.cancelled()``)."""
        return self.job.writer.cancelled()

    def _entered(self, runs: bool) -> bool:
        if runs:
            self._token = self.job.enter()
        self.done = not runs  # refused: recorded cancelled
        return runs

    def finish(self, exc: BaseException | None = None) -> None:
        """Record how the attempt ended, unless an outcome was; leave."""
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
        """Record ``queued`` for a retry, unless an outcome was; whether the retry may
        go ahead. The job stays current until :meth:`leave` (the task may be unwinding)."""
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
        """The job stops being current here; nothing is recorded."""
        token, self._token = self._token, None
        # From another context than the one it started in (Huey's consumer reports
        # a worker thread's task at shutdown), nothing of ours is set: no reset.
        with contextlib.suppress(ValueError, RuntimeError):
            if token is not None:
                self.job.exit(token)

    def _settle(self) -> bool:
        """Whether this is the attempt's first outcome (then it is the only one)."""
        first, self.done = not self.done, True
        return first


def record_outcome(
    spec: JobSpec | None, job_id: str, exc: BaseException | None, *, retry: bool = False
) -> None:
    """Record an outcome decided outside the job's run (a revoke, a time limit or a
    dead worker reported by another process): failed, cancelled for a ``Cancelled``,
    or queued again when ``retry``. Nothing when ``spec`` is None (not tracked)."""
    if spec is None:
        return
    attempt = Attempt(spec.job(job_id))
    if retry:
        attempt.requeue(exc)
    else:
        attempt.finish(exc)


# The attribute :meth:`Attempts.carry` keeps a run's attempt in.
_CARRIED = "_jobstatus_attempt"


class Attempts:
    """The attempts running in this process, by job id (each dict operation is atomic,
    so threads share it; only :meth:`discard`'s test-then-delete needs the lock, and
    :meth:`add` takes it so that no add lands between the two)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Attempt] = {}
        self._lock = threading.Lock()

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._by_id[attempt.job.job_id] = attempt

    def get(self, job_id: object) -> Attempt | None:
        return self._by_id.get(job_id) if isinstance(job_id, str) else None

    def pop(self, job_id: object) -> Attempt | None:
        return self._by_id.pop(job_id, None) if isinstance(job_id, str) else None

    def carry(self, attempt: Attempt, run: object) -> None:
        """Add ``attempt``, and keep it on ``run``, the queue's object for this one run
        (a Celery request, a Dramatiq message): a retry has the same job id and may
        start in another thread before this run's last hook, so by id is not enough."""
        self.add(attempt)
        setattr(run, _CARRIED, attempt)

    @staticmethod
    def carried(run: object) -> Attempt | None:
        """The attempt kept on ``run`` by :meth:`carry` (None: not tracked, not started)."""
        attempt = getattr(run, _CARRIED, None)
        return attempt if isinstance(attempt, Attempt) else None

    def discard(self, attempt: Attempt) -> None:
        """Forget ``attempt``, unless a later attempt of its job took its place."""
        with self._lock:
            if self._by_id.get(attempt.job.job_id) is attempt:
                del self._by_id[attempt.job.job_id]
