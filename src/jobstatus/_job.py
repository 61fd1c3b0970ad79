"""Running code as a job: ``Job`` (what integrations drive), ``current()``, ``track``,
``submit`` and ``asubmit``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar, overload

from . import _lifecycle as lifecycle
from ._cancel import delivery
from ._config import (
    JobOptions,
    require_shared_store,
    settings,
    store_or_default,
    validate_options,
)
from ._errors import Cancelled, NoCurrentJob
from ._group import ancestry
from ._heartbeat import heartbeat
from ._job_async import AsyncJobTransitions, AsyncSpecRuns
from ._job_sync import JobTransitions, SpecRuns
from ._meter import job_meter
from ._record import Change, Record, check_name, validate_job_id
from ._status import Status
from ._writer import AsyncWriter, Writer
from .stores.base import Store

logger = logging.getLogger("jobstatus")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_current: ContextVar[Status | None] = ContextVar("jobstatus_current", default=None)


def current() -> Status:
    """The running job's live Status (works in threads and asyncio tasks).

    Raises:
        NoCurrentJob: called outside a job (it is also a ``LookupError``).

    Example::

        status = jobstatus.current()
        status.progress.total = len(rows)
        for row in rows:
            handle(row)
            status.progress.increment()
    """
    status = _current.get()
    if status is None:
        raise NoCurrentJob(
            "jobstatus.current() was called outside a job; run the code through "
            "@jobstatus.track or a queue integration"
        )
    return status


def new_job_id() -> str:
    """A fresh random job id (32 hex characters)."""
    return uuid.uuid4().hex


class Job(JobTransitions, AsyncJobTransitions):
    """One run of one job: its live Status and its lifecycle transitions.

    Integrations create a Job when a task is published or starts, and call
    ``enqueued``, ``started``, ``finished``, ``retrying`` or ``cancelled`` (or the
    async twins). ``activate()`` makes ``jobstatus.current()`` return this job's Status.

    Args:
        job_id: the job's id.
        name: the task's name, recorded with queued and working.
        store: a store, URL or client; the configured store when None.
        options: per-job options (``expires_in``, ``throttle_interval``, ...)
            over the global ones.
        parent: the group this job belongs to (an id or a Status; see
            ``jobstatus.group``); checked here, before the job's first write.
        loop: for an async job, its event loop: writes then run on the loop
            and never block it.

    Raises:
        TypeError, ValueError: a malformed id or name, or a parent that is not
            a group, would make a cycle or nests too deep.
    """

    #: The writer of a Job given a ``loop`` (a subclass may hand its writes on differently).
    async_writer: ClassVar[type[AsyncWriter]] = AsyncWriter

    def __init__(
        self,
        job_id: str,
        *,
        name: str | None = None,
        store: object = None,
        options: Mapping[str, Any] | None = None,
        parent: object = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.job_id = validate_job_id(job_id)
        self.options: JobOptions = settings.options.with_overrides(options or {})
        self.store: Store = store_or_default(store)
        parent_id = None if parent is None else ancestry.check(self.store, parent, self.job_id)
        self.identity = lifecycle.Identity(None if name is None else check_name(name), parent_id)
        self.record: Record = {}
        self.writer: Writer = (
            self.async_writer(self.store, job_id, self.record, self.options, in_job=True, loop=loop)
            if loop is not None
            else Writer(self.store, job_id, self.record, self.options, in_job=True)
        )
        self.status = Status(job_id, self.record, self.store, job=self, writer=self.writer)
        self.failed_by_hand = False
        # The metrics follow the record: a job whose lifecycle writes no status records none.
        self.meter = job_meter(self.identity.name) if "status" in self.options.includes else None

    def __repr__(self) -> str:
        return f"<Job {self.job_id!r}>"

    @property
    def cancel_seen(self) -> bool:
        """Whether this process learnt that the job's cancel was requested."""
        return self.writer.cancel is not None

    # -- context ------------------------------------------------------------------

    def enter(self) -> Token[Status | None]:
        """Make this job current; give the token back to :meth:`exit`."""
        return _current.set(self.status)

    def exit(self, token: Token[Status | None]) -> None:
        """Undo :meth:`enter`."""
        _current.reset(token)

    @contextmanager
    def activate(self) -> Iterator[Status]:
        """``with job.activate():`` runs the block as this job."""
        token = self.enter()
        try:
            yield self.status
        finally:
            self.exit(token)

    # -- transitions: enqueued ... cancelled, and run, are JobTransitions' (_job_async.py)

    def mark_failed(self, exc: BaseException) -> None:
        """Record ``failed`` now, and keep it when the job then returns."""
        self.failed_by_hand = True
        self._moved("failed")
        self._write(lifecycle.raised(self.options, exc))

    def _refused(self) -> Change:
        """``cancelled``, for a start refused by a pending request; nothing when the job
        is finished already (a retry or redelivery of a job that was cancelled)."""
        return replace(lifecycle.cancelled(self.options), guard="unfinished")

    def _ending(self, exc: BaseException | None) -> str:
        """How the attempt ends: ``completed``, ``failed`` or ``cancelled``."""
        if isinstance(exc, Cancelled) or (exc is None and self.cancel_seen):
            return "cancelled"
        return "failed" if exc is not None or self.failed_by_hand else "completed"

    def _final_change(self, ending: str, exc: BaseException | None) -> Change:
        if ending == "cancelled":
            return lifecycle.cancelled(self.options)
        if exc is not None:
            return lifecycle.raised(self.options, exc)
        if self.failed_by_hand:
            return Change()  # stays failed; the write still flushes what is held
        return lifecycle.returned(self.options)

    # -- metrics: each transition tells the meter, when a library records -----------

    def _moved(self, status: str) -> None:
        if self.meter is not None:
            self.meter.moved(status)

    def _began(self, started_at: float) -> None:
        if self.meter is not None:
            self.meter.began(started_at, self.writer.queued_at)

    def _ended(self, status: str) -> None:
        if self.meter is not None:
            self.meter.ended(status)

    def _running(self) -> None:
        heartbeat.add(self.writer)
        delivery.add(self.writer)

    def _stopped(self) -> None:
        heartbeat.remove(self.writer)
        delivery.remove(self.writer)


#: Where a function declares how its jobs are recorded: its :class:`JobSpec`, or False
#: (never tracked). ``track()`` and the queues' option decorators all set it.
SPEC_ATTRIBUTE = "__jobstatus__"
#: On a ``track()`` wrapper: the function it runs (``submit`` runs that under its own id).
_RUNS_ATTRIBUTE = "__jobstatus_runs__"


@dataclass(frozen=True)
class JobSpec(SpecRuns, AsyncSpecRuns):
    """How the jobs of one function or task are recorded: their name, store, per-job
    options and group.

    ``track()`` keeps one per decorated function; each queue integration keeps one
    per app or worker and one per task, the task's over the app's (:meth:`merged`).
    Every Job of jobstatus is built by :meth:`job` or :meth:`ajob`.
    """

    name: str | None = None
    store: object = None
    options: Mapping[str, Any] = field(default_factory=dict)
    parent: object = None

    def merged(self, own: JobSpec) -> JobSpec:
        """This spec overridden by ``own`` (a task's over its app's): options key by key."""
        return JobSpec(
            own.name if own.name is not None else self.name,
            own.store if own.store is not None else self.store,
            {**self.options, **own.options},
            own.parent if own.parent is not None else self.parent,
        )

    def named(self, name: object) -> JobSpec:
        """This spec for the task called ``name`` (a queue's, from its message); a
        name a record cannot hold (not a str, empty, too long, or holding a lone
        surrogate, as an undecodable name does) leaves it unnamed: a queue's name
        must never keep its task from running or from being recorded."""
        try:
            return replace(self, name=check_name(name))
        except (TypeError, ValueError):
            return self

    def job(
        self,
        job_id: str,
        *,
        parent: object = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Job:
        """A Job for ``job_id``; ``parent`` (one given at publish time) overrides the spec's.

        Raises:
            TypeError, ValueError: a malformed id, or a parent that is not a group.
        """
        return Job(
            job_id,
            name=self.name,
            store=self.store,
            options=self.options,
            parent=self.parent if parent is None else parent,
            loop=loop,
        )

    async def ajob(self, job_id: str, *, parent: object = None) -> Job:
        """A Job for ``job_id`` whose writes run on the running event loop.

        Its parent is checked first without blocking the loop, so the Job finds
        the group's chain known and reads nothing.
        """
        chosen = self.parent if parent is None else parent
        if chosen is not None:
            await ancestry.acheck(store_or_default(self.store), chosen, job_id)
        return self.job(job_id, parent=chosen, loop=asyncio.get_running_loop())

    def serialized(
        self, job_id: str, args: Any, kwargs: Any, queue: str | None = None, **more: Any
    ) -> dict[str, Any]:
        """The job's ``serialized_job``: name, args, kwargs, queue, job_id, and ``more``
        (the core makes it JSON-safe)."""
        return {
            "name": self.name,
            "args": list(args or ()),
            "kwargs": dict(kwargs or {}),
            "queue": queue,
            "job_id": job_id,
            **more,
        }


def _spec_of(fn: Callable[..., Any]) -> tuple[Callable[..., Any], JobSpec]:
    """The code to run and its JobSpec: a ``track()`` wrapper's, else defaults."""
    spec = getattr(fn, SPEC_ATTRIBUTE, None)
    code = getattr(fn, _RUNS_ATTRIBUTE, None)
    if isinstance(spec, JobSpec) and callable(code):
        return code, spec
    return fn, JobSpec(name=_name_of(fn))


def _name_of(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", repr(fn))
    return f"{module}.{qualname}" if module else qualname


@overload
def track(fn: F, /) -> F: ...
@overload
def track(
    *,
    name: str | None = None,
    store: object = None,
    parent: object = None,
    expires_in: Any = None,
    finished_expires_in: Any = None,
    throttle_interval: Any = None,
    includes: Any = None,
    on_store_error: str | None = None,
    heartbeat_interval: Any = None,
    stale_after: Any = None,
    history_limit: int | None = None,
) -> Callable[[F], F]: ...


def track(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    store: object = None,
    parent: object = None,
    **options: Any,
) -> Any:
    """Run a function (sync or async) as a tracked job each time it is called.

    Each call gets a new job id (``jobstatus.current().job_id`` inside) and
    records working, then completed, failed or cancelled; the function's result
    or exception comes back unchanged.

    Args:
        name: the job's ``name`` (default: the function's module.qualname).
        store: a store, URL or client for this function's jobs.
        parent: the group every call's job joins (an id or a Status).
        expires_in, finished_expires_in, throttle_interval, includes,
        on_store_error, heartbeat_interval, stale_after, history_limit:
            per-job overrides of the ``configure()`` options.

    Raises:
        ConfigurationError: an unknown option or a bad value.
        TypeError, ValueError: a malformed name or parent id.

    Example::

        @jobstatus.track(throttle_interval=0.5)
        def export(rows):
            status = jobstatus.current()
            status.progress.total = len(rows)
            for row in rows:
                status.progress.increment()
    """
    checked = validate_options(options)
    if name is not None:
        check_name(name)
    if parent is not None and not isinstance(parent, Status):
        validate_job_id(parent)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        spec = JobSpec(name or _name_of(function), store, checked, parent)
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await spec.arun(function, new_job_id(), args, kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(function)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return spec.run(function, new_job_id(), args, kwargs)

            wrapper = sync_wrapper
        setattr(wrapper, SPEC_ATTRIBUTE, spec)
        setattr(wrapper, _RUNS_ATTRIBUTE, function)
        return wrapper

    return decorate(fn) if fn is not None else decorate


def submit(
    executor: Executor,
    fn: Callable[..., Any],
    /,
    *args: Any,
    parent: object = None,
    **kwargs: Any,
) -> str:
    """Record ``queued``, submit ``fn`` to a ``concurrent.futures`` executor, return the job id.

    ``fn`` may be tracked (its options apply) or plain. With a process pool,
    ``fn`` must be importable (defined at module level), and the store must be
    one that other processes can reach (not ``memory://``). ``parent`` (an id or
    a Status) makes the job a child of that group; it is not passed to ``fn``.

    Raises:
        ConfigurationError: a process pool with ``memory://``, which its workers
            cannot reach (nothing is submitted).
        StoreError: recording ``queued`` failed and ``on_store_error`` is ``"raise"``.
        ValueError: ``parent`` is not a group, would make a cycle, or nests too deep.

    Example::

        with ProcessPoolExecutor() as pool:
            job_id = jobstatus.submit(pool, export, rows)
        jobstatus.get(job_id).wait()
    """
    function, spec = _spec_of(fn)
    job_id = new_job_id()
    job = spec.job(job_id, parent=parent)
    if isinstance(executor, ProcessPoolExecutor):
        require_shared_store(job.store, "the ProcessPoolExecutor's worker processes")
    job.enqueued(spec.serialized(job_id, args, kwargs))
    executor.submit(
        _run_submitted,
        job_id,
        fn,
        args,
        kwargs,
        settings.store_spec(),
        os.getpid(),
        job.identity.parent,
    )
    return job_id


def _run_submitted(
    job_id: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    store_spec: str | None,
    submitter_pid: int,
    parent: str | None,
) -> Any:
    """Runs in the executor's worker: the tracked function under the given id."""
    if os.getpid() != submitter_pid and store_spec and not settings.is_store_configured():
        # A spawned worker starts with default settings: use the submitter's store.
        settings.configure(store=store_spec)
    function, spec = _spec_of(fn)
    return spec.run(function, job_id, args, kwargs, parent)


_background: set[asyncio.Task[Any]] = set()


async def asubmit(
    fn: Callable[..., Awaitable[Any]], /, *args: Any, parent: object = None, **kwargs: Any
) -> str:
    """Record ``queued``, start the coroutine function as a task, return the job id.

    The task runs on the running event loop; its failure is recorded as
    ``failed`` (and logged at debug level, as nobody awaits the task).
    ``parent`` (an id or a Status) makes the job a child of that group.

    Example::

        job_id = await jobstatus.asubmit(fetch_all, urls)
    """
    function, spec = _spec_of(fn)
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"asubmit() takes a coroutine function, not {function!r}")
    job_id = new_job_id()
    job = await spec.ajob(job_id, parent=parent)
    await job.aenqueued(spec.serialized(job_id, args, kwargs))
    task = asyncio.get_running_loop().create_task(
        spec.arun(function, job_id, args, kwargs, job.identity.parent)
    )
    _background.add(task)
    task.add_done_callback(_forget)
    return job_id


def _forget(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("job task failed (recorded as failed)", exc_info=task.exception())
