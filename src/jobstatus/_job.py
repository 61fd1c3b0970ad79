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
from concurrent.futures import Executor
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload

from . import _lifecycle as lifecycle
from ._config import JobOptions, settings, validate_options
from ._errors import NoCurrentJob, StoreError
from ._heartbeat import heartbeat
from ._record import Change, Record, validate_job_id
from ._status import Status
from ._writer import AsyncWriter, Writer
from .stores import resolve_store
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


class Job:
    """One run of one job: its live Status and its lifecycle transitions.

    Integrations create a Job when a task is published or starts, and call
    ``enqueued``, ``started``, ``finished`` or ``retrying`` (or the async twins).
    ``activate()`` makes ``jobstatus.current()`` return this job's Status.

    Args:
        job_id: the job's id.
        store: a store, URL or client; the configured store when None.
        options: per-job options (``expires_in``, ``throttle_interval``, ...)
            over the global ones.
        loop: for an async job, its event loop: writes then run on the loop
            and never block it.
    """

    #: The writer of a Job given a ``loop`` (a subclass may hand its writes on differently).
    async_writer: ClassVar[type[AsyncWriter]] = AsyncWriter

    def __init__(
        self,
        job_id: str,
        *,
        store: object = None,
        options: Mapping[str, Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.job_id = validate_job_id(job_id)
        self.options: JobOptions = settings.options.with_overrides(options or {})
        self.store: Store = settings.store() if store is None else resolve_store(store)
        self.record: Record = {}
        self.writer: Writer = (
            self.async_writer(self.store, job_id, self.record, self.options, in_job=True, loop=loop)
            if loop is not None
            else Writer(self.store, job_id, self.record, self.options, in_job=True)
        )
        self.status = Status(job_id, self.record, self.store, job=self, writer=self.writer)
        self.failed_by_hand = False

    def __repr__(self) -> str:
        return f"<Job {self.job_id!r}>"

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

    # -- transitions (sync) ---------------------------------------------------------

    def _write(self, change: Change) -> None:
        self.writer.submit(change, force=True)

    def enqueued(self, serialized_job: Mapping[str, Any] | None = None) -> None:
        """Record ``queued`` (from the publishing process)."""
        self._write(lifecycle.enqueued(self.options, serialized_job))

    def started(self, serialized_job: Mapping[str, Any] | None = None) -> None:
        """Record ``working`` for this attempt; heartbeats run until it ends."""
        self._write(lifecycle.started(self.options, serialized_job))
        heartbeat.add(self.writer)

    def finished(self, exc: BaseException | None = None) -> None:
        """Record ``completed`` (no ``exc``) or ``failed``, with all held changes."""
        heartbeat.remove(self.writer)
        self._write(self._final_change(exc))

    def retrying(self, exc: BaseException | None = None) -> None:
        """Record ``queued`` again: a retry was scheduled."""
        heartbeat.remove(self.writer)
        self.failed_by_hand = False
        self._write(lifecycle.retrying(self.options, exc))

    def mark_failed(self, exc: BaseException) -> None:
        """Record ``failed`` now, and keep it when the job then returns."""
        self.failed_by_hand = True
        self._write(lifecycle.raised(self.options, exc))

    def _final_change(self, exc: BaseException | None) -> Change:
        if exc is not None:
            return lifecycle.raised(self.options, exc)
        if self.failed_by_hand:
            return Change()  # stays failed; the write still flushes what is held
        return lifecycle.returned(self.options)

    # -- transitions (async) --------------------------------------------------------

    async def _awrite(self, change: Change) -> None:
        await self.writer.asubmit(change, force=True)

    async def aenqueued(self, serialized_job: Mapping[str, Any] | None = None) -> None:
        """Async twin of :meth:`enqueued`."""
        await self._awrite(lifecycle.enqueued(self.options, serialized_job))

    async def astarted(self, serialized_job: Mapping[str, Any] | None = None) -> None:
        """Async twin of :meth:`started`."""
        await self._awrite(lifecycle.started(self.options, serialized_job))
        heartbeat.add(self.writer)

    async def afinished(self, exc: BaseException | None = None) -> None:
        """Async twin of :meth:`finished`."""
        heartbeat.remove(self.writer)
        await self._awrite(self._final_change(exc))

    async def aretrying(self, exc: BaseException | None = None) -> None:
        """Async twin of :meth:`retrying`."""
        heartbeat.remove(self.writer)
        self.failed_by_hand = False
        await self._awrite(lifecycle.retrying(self.options, exc))

    # -- running --------------------------------------------------------------------

    def run(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        serialized_job: Mapping[str, Any] | None = None,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` as this job, recording its whole lifecycle."""
        self.started(serialized_job)
        with self.activate():
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._finish_quietly(exc)
                raise
        self.finished()
        return result

    async def arun(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        serialized_job: Mapping[str, Any] | None = None,
    ) -> T:
        """Async twin of :meth:`run`, for a coroutine function."""
        await self.astarted(serialized_job)
        token = self.enter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            try:
                await self.afinished(exc)
            except StoreError:
                logger.warning("jobstatus could not record job %r as failed", self.job_id)
            raise
        finally:
            self.exit(token)
        await self.afinished()
        return result

    def _finish_quietly(self, exc: BaseException) -> None:
        """Record the failure; a store error here must not hide the job's own exception."""
        try:
            self.finished(exc)
        except StoreError:
            logger.warning("jobstatus could not record job %r as failed", self.job_id)


@dataclass(frozen=True)
class TrackedFunction:
    """How a ``@track``-ed function runs: its name, store and per-job options.

    The queue integrations keep the same per task in ``integrations._common.Tracking``.
    """

    name: str
    store: object = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def job(self, job_id: str, *, loop: asyncio.AbstractEventLoop | None = None) -> Job:
        return Job(job_id, store=self.store, options=self.options, loop=loop)

    def run(
        self, fn: Callable[..., Any], job_id: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        """Run ``fn`` as the job ``job_id``."""
        return self.job(job_id).run(fn, args, kwargs, self.serialized(job_id, args, kwargs))

    async def arun(
        self,
        fn: Callable[..., Awaitable[Any]],
        job_id: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        """Run the coroutine function ``fn`` as the job ``job_id`` (writes on the loop)."""
        job = self.job(job_id, loop=asyncio.get_running_loop())
        return await job.arun(fn, args, kwargs, self.serialized(job_id, args, kwargs))

    def serialized(
        self, job_id: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": list(args),
            "kwargs": dict(kwargs),
            "queue": None,
            "job_id": job_id,
        }


TRACKING_ATTRIBUTE = "__jobstatus_tracking__"


def _tracking_of(fn: Callable[..., Any]) -> tuple[Callable[..., Any], TrackedFunction]:
    """The undecorated function and its TrackedFunction (defaults for a plain function)."""
    tracking = getattr(fn, TRACKING_ATTRIBUTE, None)
    if isinstance(tracking, TrackedFunction):
        return fn.__wrapped__, tracking  # type: ignore[attr-defined]
    return fn, TrackedFunction(name=_name_of(fn))


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
    expires_in: Any = None,
    finished_expires_in: Any = None,
    throttle_interval: Any = None,
    includes: Any = None,
    on_store_error: str | None = None,
) -> Callable[[F], F]: ...


def track(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    store: object = None,
    **options: Any,
) -> Any:
    """Run a function (sync or async) as a tracked job each time it is called.

    Each call gets a new job id (``jobstatus.current().job_id`` inside) and
    records working, then completed or failed; the function's result or
    exception comes back unchanged.

    Args:
        name: the job's name in ``serialized_job`` (default: module.qualname).
        store: a store, URL or client for this function's jobs.
        expires_in, finished_expires_in, throttle_interval, includes,
        on_store_error: per-job overrides of the ``configure()`` options.

    Raises:
        ConfigurationError: an unknown option or a bad value.

    Example::

        @jobstatus.track(throttle_interval=0.5)
        def export(rows):
            status = jobstatus.current()
            status.progress.total = len(rows)
            for row in rows:
                status.progress.increment()
    """
    checked = validate_options(options)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        tracking = TrackedFunction(name or _name_of(function), store, checked)
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await tracking.arun(function, new_job_id(), args, kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(function)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return tracking.run(function, new_job_id(), args, kwargs)

            wrapper = sync_wrapper
        setattr(wrapper, TRACKING_ATTRIBUTE, tracking)
        return wrapper

    return decorate(fn) if fn is not None else decorate


def submit(executor: Executor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
    """Record ``queued``, submit ``fn`` to a ``concurrent.futures`` executor, return the job id.

    ``fn`` may be tracked (its options apply) or plain. With a process pool,
    ``fn`` must be importable (defined at module level), and the store must be
    one that other processes can reach (not ``memory://``).

    Raises:
        StoreError: recording ``queued`` failed and ``on_store_error`` is ``"raise"``.

    Example::

        with ProcessPoolExecutor() as pool:
            job_id = jobstatus.submit(pool, export, rows)
        jobstatus.get(job_id).wait()
    """
    function, tracking = _tracking_of(fn)
    job_id = new_job_id()
    tracking.job(job_id).enqueued(tracking.serialized(job_id, args, kwargs))
    executor.submit(_run_submitted, job_id, fn, args, kwargs, settings.store_spec(), os.getpid())
    return job_id


def _run_submitted(
    job_id: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    store_spec: str | None,
    parent_pid: int,
) -> Any:
    """Runs in the executor's worker: the tracked function under the given id."""
    if os.getpid() != parent_pid and store_spec and not settings.is_store_configured():
        # A spawned worker starts with default settings: use the submitter's store.
        settings.configure(store=store_spec)
    function, tracking = _tracking_of(fn)
    return tracking.run(function, job_id, args, kwargs)


_background: set[asyncio.Task[Any]] = set()


async def asubmit(fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> str:
    """Record ``queued``, start the coroutine function as a task, return the job id.

    The task runs on the running event loop; its failure is recorded as
    ``failed`` (and logged at debug level, as nobody awaits the task).

    Example::

        job_id = await jobstatus.asubmit(fetch_all, urls)
    """
    function, tracking = _tracking_of(fn)
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"asubmit() takes a coroutine function, not {function!r}")
    job_id = new_job_id()
    loop = asyncio.get_running_loop()
    await tracking.job(job_id, loop=loop).aenqueued(tracking.serialized(job_id, args, kwargs))
    task = loop.create_task(tracking.arun(function, job_id, args, kwargs))
    _background.add(task)
    task.add_done_callback(_forget)
    return job_id


def _forget(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("job task failed (recorded as failed)", exc_info=task.exception())
