"""arq: record every job's lifecycle; async jobs write on their event loop.

The worker side wraps the job functions of a ``WorkerSettings`` and adds an
``after_job_end`` hook; the publishing side records ``queued``::

    from jobstatus.integrations.arq import enqueue_job, options, track

    @options(throttle_interval=0.5)            # optional per-function options
    async def export(ctx, rows):
        status = jobstatus.current()
        ...

    class WorkerSettings:
        functions = [export]

    track(WorkerSettings)                      # every function of the worker

    job = await enqueue_job(redis, "export", rows)   # records queued, then enqueues
    jobstatus.get(job)

How each arq outcome maps to the record is in ``docs/arq.md``.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .._config import announce_store, store_or_default
from .._errors import ConfigurationError, StoreError
from .._job import Job
from ..stores.base import acall_store
from ._common import Tracking, logger, serialized, tracking_from

try:
    from arq.connections import ArqRedis
    from arq.constants import default_queue_name, job_key_prefix
    from arq.jobs import Job as ArqJob
    from arq.typing import WorkerCoroutine
    from arq.worker import Function, JobExecutionFailed, Retry, RetryJob, func
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "jobstatus.integrations.arq needs arq: pip install 'jobstatus[arq]'"
    ) from exc

__all__ = ["enqueue_job", "options", "track"]

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS_ATTRIBUTE = "__jobstatus_arq__"
CTX_KEY = "jobstatus"  # where a running job keeps its Job in arq's per-job ctx
WRAPPED_ATTRIBUTE = "__jobstatus_arq_wrapped__"
ARQ_DEFAULT_MAX_TRIES = 5


def options(
    enabled: bool = True, /, *, store: object = None, **job_options: Any
) -> Callable[[F], F]:
    """Per-function options for :func:`track`; ``@options(False)`` never tracks the function.

    Args:
        store: a store, URL or client for this function's jobs.
        job_options: ``expires_in``, ``throttle_interval``, ``includes``, ...
            over the worker's options.

    Raises:
        ConfigurationError: an unknown option or a bad value.
    """
    value: object = {"store": store, **job_options} if enabled else False
    tracking_from(value, "arq options()")

    def decorate(fn: F) -> F:
        setattr(fn, OPTIONS_ATTRIBUTE, value)
        return fn

    return decorate


def track(settings: Any, *, store: object = None, **job_options: Any) -> Any:
    """Record the lifecycle of every job function of an arq ``WorkerSettings``.

    Wraps each entry of ``functions`` (coroutine functions or ``arq.func(...)``)
    and chains an ``after_job_end`` hook before any the settings already have.
    ``settings`` is the class (or dict) given to ``arq``; it is changed in
    place and returned. Cron jobs are not tracked.

    Args:
        store: a store, URL or client for these jobs (default: the configured one).
        job_options: per-job options (``expires_in``, ``throttle_interval``,
            ``includes``, ...); a function's :func:`options` override them.

    Raises:
        ConfigurationError: an unknown option or a bad value.
    """
    app = tracking_from({"store": store, **job_options}, "arq WorkerSettings")
    assert app is not None
    default_tries = _setting(settings, "max_tries", ARQ_DEFAULT_MAX_TRIES)
    queue = _setting(settings, "queue_name", default_queue_name)
    wrapped = [
        _wrap(func(entry), app, default_tries, queue)
        for entry in _setting(settings, "functions", [])
    ]
    _set(settings, "functions", wrapped)
    _set(
        settings, "after_job_end", _chain(_after_job_end, _setting(settings, "after_job_end", None))
    )
    return settings


async def enqueue_job(redis: ArqRedis, function: str, *args: Any, **kwargs: Any) -> ArqJob | None:
    """``redis.enqueue_job(...)`` that records ``queued`` first, under the job's id.

    Takes what ``ArqRedis.enqueue_job`` takes (``_job_id``, ``_queue_name``,
    ``_defer_by``, ...). Without ``_job_id`` it picks the id, so the record
    exists before any worker can start the job. Returns arq's Job, or None
    when a job with that id already exists (as arq does).
    """
    job_id = kwargs.pop("_job_id", None) or uuid.uuid4().hex
    queue = kwargs.get("_queue_name") or redis.default_queue_name
    job_kwargs = {key: value for key, value in kwargs.items() if not key.startswith("_")}
    job = Job(job_id, loop=asyncio.get_running_loop())
    try:
        await job.aenqueued(serialized(function, args, job_kwargs, queue, job_id))
    except StoreError as exc:
        logger.warning("jobstatus could not record queued for job %r: %s", job_id, exc)
    return await redis.enqueue_job(function, *args, _job_id=job_id, **kwargs)


# -- the worker side ---------------------------------------------------------------


@dataclass
class _Running:
    """A job between its function's start and arq's ``after_job_end``."""

    job: Job
    max_tries: int
    exc: BaseException | None = None
    settled: bool = False  # completed or failed for sure: nothing left for the hook


def _wrap(function: Function, app: Tracking, default_tries: int, queue: str) -> Function:
    own = tracking_from(getattr(function.coroutine, OPTIONS_ATTRIBUTE, True), function.name)
    if getattr(function.coroutine, WRAPPED_ATTRIBUTE, False):
        return function
    if own is None:
        return _untracked(function, app)
    tracking = app.merged(own)
    max_tries = function.max_tries or default_tries
    coroutine = function.coroutine

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        job_id = ctx["job_id"]
        job = Job(
            job_id, store=tracking.store, options=tracking.options, loop=asyncio.get_running_loop()
        )
        running = _Running(job, max_tries)
        ctx[CTX_KEY] = running
        announce_store(job.store, "arq")
        # Queued on the job's writer, not awaited: the function starts at once and
        # every later write of the job goes out after this one.
        job.started(serialized(function.name, args, kwargs, queue, job_id))
        token = job.enter()
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except (Retry, RetryJob, asyncio.CancelledError) as exc:
            running.exc = exc  # retried, aborted or timed out: the hook knows which
            raise
        except Exception as exc:
            running.settled = True
            await _quietly(job.afinished(exc), job_id)
            raise
        finally:
            job.exit(token)
        running.settled = True
        await _quietly(job.afinished(), job_id)
        return result

    return _replaced(function, run)


def _untracked(function: Function, app: Tracking) -> Function:
    """A function opted out with ``@options(False)``: nothing is recorded for it.

    ``enqueue_job`` sees only the function's name, so it records ``queued``
    for it all the same; the worker, which knows, deletes that record before
    the function runs.
    """
    coroutine = function.coroutine

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        job_id = ctx["job_id"]
        await _quietly(_forget_queued(app.store, job_id), job_id)
        return await coroutine(ctx, *args, **kwargs)

    return _replaced(function, run)


async def _forget_queued(store: object, job_id: str) -> None:
    """Delete the record ``enqueue_job`` wrote (queued, never started), and no other."""
    resolved = store_or_default(store)
    record = await acall_store(resolved.aread, job_id)
    if record is not None and record.get("status") == "queued" and "started_at" not in record:
        await acall_store(resolved.adelete, job_id)


def _replaced(function: Function, run: WorkerCoroutine) -> Function:
    """``function`` with its coroutine replaced by ``run`` (marked, so track() wraps once)."""
    setattr(run, WRAPPED_ATTRIBUTE, True)
    return Function(
        function.name, run, function.timeout_s, function.keep_result_s,
        function.keep_result_forever, function.max_tries,
    )  # fmt: skip


async def _after_job_end(ctx: dict[str, Any]) -> None:
    """Settle a job that was retried, aborted, timed out or cancelled by a shutdown."""
    running = ctx.get(CTX_KEY)
    if not isinstance(running, _Running) or running.settled:
        return
    running.settled = True
    job_id: str = ctx["job_id"]
    redis: ArqRedis = ctx["redis"]
    if await redis.exists(job_key_prefix + job_id):  # arq will run it again
        if ctx["job_try"] >= running.max_tries:  # ... only to fail it at once
            exc: BaseException = JobExecutionFailed(f"max {running.max_tries} retries exceeded")
            await _quietly(running.job.afinished(exc), job_id)
        else:
            await _quietly(running.job.aretrying(running.exc), job_id)
        return
    # Finished without returning: aborted, or cancelled by its timeout. arq
    # stored the exception it saw (the function itself only saw a cancel).
    info = await ArqJob(job_id, redis).result_info()
    outcome = info.result if info is not None else None
    exc = (
        outcome if isinstance(outcome, BaseException) else (running.exc or asyncio.CancelledError())
    )
    await _quietly(running.job.afinished(exc), job_id)


async def _quietly(write: Awaitable[object], job_id: str) -> None:
    try:
        await write
    except StoreError as exc:
        logger.warning("jobstatus could not record a change of job %r: %s", job_id, exc)


def _chain(
    first: Callable[[dict[str, Any]], Awaitable[None]],
    then: Callable[[dict[str, Any]], Awaitable[None]] | None,
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    if then is None or then is first:
        return first
    if getattr(then, "__wrapped__", None) is first:  # track() ran before
        return then

    @functools.wraps(first)
    async def both(ctx: dict[str, Any]) -> None:
        await first(ctx)
        await then(ctx)

    return both


def _setting(settings: Any, name: str, default: Any) -> Any:
    if isinstance(settings, Mapping):
        return settings.get(name, default)
    return settings.__dict__.get(name, default)


def _set(settings: Any, name: str, value: Any) -> None:
    if isinstance(settings, dict):
        settings[name] = value
    else:
        setattr(settings, name, value)
