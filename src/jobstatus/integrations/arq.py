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

    await enqueue_job(redis, "export", rows, _parent=g)   # joins the group g
    # or for every job of a function: @options(parent="nightly")

A job whose cancel was requested with ``jobstatus.cancel`` before it started does
not run (it raises ``jobstatus.Cancelled``, which arq stores as its result); arq's
own ``Job.abort()`` of a running job (``allow_abort_jobs``) records ``cancelled``.
How each arq outcome maps to the record is in ``docs/arq.md``.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .._config import store_or_default
from .._errors import Cancelled
from .._job import SPEC_ATTRIBUTE, JobSpec
from .._record import Record
from .._revokers import register_revoker
from ..stores.base import acall_store
from ._common import (
    Attempt,
    aenqueue,
    apublisher_job,
    aworker_job,
    declaring,
    missing,
    quietly,
    record_outcome,
    spec_of_options,
    task_spec,
)

try:
    import redis
    from arq.connections import ArqRedis
    from arq.constants import abort_jobs_ss, default_queue_name, job_key_prefix
    from arq.jobs import Job as ArqJob
    from arq.typing import WorkerCoroutine
    from arq.worker import Function, JobExecutionFailed, Retry, RetryJob, func
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("arq", "arq") from exc

__all__ = ["enqueue_job", "options", "track"]

F = TypeVar("F", bound=Callable[..., Any])

CTX_KEY = "jobstatus"  # where a running job keeps its Attempt in arq's per-job ctx
MAX_TRIES_KEY = "jobstatus_max_tries"  # and the tries its function has
WRAPPED_ATTRIBUTE = "__jobstatus_arq_wrapped__"
ARQ_DEFAULT_MAX_TRIES = 5

# The arq Redis pools enqueue_job published through: where the revoker aborts a job.
_pools: weakref.WeakValueDictionary[int, ArqRedis] = weakref.WeakValueDictionary()


def options(
    enabled: bool = True, /, *, store: object = None, parent: object = None, **job_options: Any
) -> Callable[[F], F]:
    """Per-function options for :func:`track`; ``@options(False)`` never tracks the function.

    Args:
        store: a store, URL or client for this function's jobs.
        parent: the group (an id or a Status) each job joins when the worker starts it.
        job_options: ``expires_in``, ``throttle_interval``, ``includes``, ...
            over the worker's options.

    Raises:
        ConfigurationError: an unknown option or a bad value (a malformed ``parent`` id).
    """
    return declaring(
        "arq options()", enabled=enabled, store=store, parent=parent, options=job_options
    )


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
    app = spec_of_options(store, job_options, "arq WorkerSettings")
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
    ``_defer_by``, ...), and ``_parent``: the group (an id or a Status) the job
    joins. Without ``_job_id`` it picks the id, so the record exists before any
    worker can start the job. Returns arq's Job, or None when a job with that
    id already exists (as arq does).

    Raises:
        TypeError, ValueError: ``_parent`` is not a group, would make a cycle or
            nests too deep (nothing is enqueued).
    """
    _pools[id(redis)] = redis
    job_id = kwargs.pop("_job_id", None) or uuid.uuid4().hex
    parent = kwargs.pop("_parent", None)
    queue = kwargs.get("_queue_name") or redis.default_queue_name
    job_kwargs = {key: value for key, value in kwargs.items() if not key.startswith("_")}
    spec = JobSpec().named(function)
    job = await apublisher_job(spec, job_id, parent)
    await aenqueue(job, spec.serialized(job_id, args, job_kwargs, queue))
    return await redis.enqueue_job(function, *args, _job_id=job_id, **kwargs)


# -- the worker side ---------------------------------------------------------------


def _wrap(function: Function, app: JobSpec, default_tries: int, queue: str) -> Function:
    if getattr(function.coroutine, WRAPPED_ATTRIBUTE, False):
        return function
    spec = task_spec(app, getattr(function.coroutine, SPEC_ATTRIBUTE, True), function.name)
    if spec is None:
        return _untracked(function, app)
    max_tries = function.max_tries or default_tries
    coroutine = function.coroutine

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        job_id = ctx["job_id"]
        attempt = Attempt(await aworker_job(spec, job_id))
        ctx[CTX_KEY], ctx[MAX_TRIES_KEY] = attempt, max_tries
        if not await attempt.astart(spec.serialized(job_id, args, kwargs, queue)):
            raise attempt.cancelled()  # recorded cancelled; arq does not retry it
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except (Retry, RetryJob, asyncio.CancelledError) as exc:
            attempt.exc = exc  # retried, aborted or timed out: the hook knows which
            raise
        except Exception as exc:
            await attempt.afinish(exc)
            raise
        finally:
            attempt.leave()
        await attempt.afinish()
        return result

    return _replaced(function, run)


def _untracked(function: Function, app: JobSpec) -> Function:
    """A function opted out with ``@options(False)``: nothing is recorded for it.

    ``enqueue_job`` sees only the function's name, so it records ``queued``
    for it all the same; the worker, which knows, deletes that record before
    the function runs.
    """
    coroutine = function.coroutine

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        job_id = ctx["job_id"]
        with quietly(job_id, "the removal of its queued record"):
            await _forget_queued(app.store, job_id)
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
    attempt = ctx.get(CTX_KEY)
    if not isinstance(attempt, Attempt) or attempt.done:
        return
    job_id: str = ctx["job_id"]
    redis: ArqRedis = ctx["redis"]
    if await redis.exists(job_key_prefix + job_id):  # arq will run it again
        max_tries = ctx[MAX_TRIES_KEY]
        if ctx["job_try"] >= max_tries:  # ... only to fail it at once
            await attempt.afinish(JobExecutionFailed(f"max {max_tries} retries exceeded"))
        else:
            await attempt.arequeue(attempt.exc)
        return
    # Finished without returning: aborted, or cancelled by its timeout. arq
    # stored the exception it saw (the function itself only saw a cancel): a
    # CancelledError for an abort, which ends the job cancelled.
    info = await ArqJob(job_id, redis).result_info()
    outcome = info.result if info is not None else None
    exc = outcome if isinstance(outcome, BaseException) else attempt.exc
    if isinstance(exc, asyncio.CancelledError):
        exc = Cancelled(job_id, "aborted by arq")
    await attempt.afinish(exc or asyncio.CancelledError())


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
    return (settings if isinstance(settings, Mapping) else settings.__dict__).get(name, default)


def _set(settings: Any, name: str, value: Any) -> None:
    if isinstance(settings, dict):
        settings[name] = value
    else:
        setattr(settings, name, value)


# -- cancel: jobstatus.cancel aborts the job in arq too --------------------------------


def _revoke(job_id: str, record: Record) -> None:
    """The revoker (see jobstatus._cancel): arq's abort (``Job.abort()`` without its
    wait) of a job in the Redis of one of this process's :func:`enqueue_job` pools.

    A queued job is recorded ``cancelled`` at once (arq drops it unrun: no hook of
    ours runs for it); a running one is cancelled at its next ``await`` when the
    worker has ``allow_abort_jobs``, else at its next progress call.
    """
    if record.get("status") not in ("queued", "working"):
        return
    for pool in list(_pools.values()):
        client = _sync_client(pool)
        try:
            if not client.exists(job_key_prefix + job_id):
                continue
            client.zadd(abort_jobs_ss, {job_id: int(time.time() * 1000)})
        finally:
            client.close()
        if record.get("status") == "queued":
            spec = JobSpec().named(record.get("name"))
            record_outcome(spec, job_id, Cancelled(job_id, "aborted before it started"))
        return


def _sync_client(pool: ArqRedis) -> redis.Redis:
    """A blocking client of the same server and database as the async ``pool`` (a
    revoker runs in plain code, off any event loop)."""
    given = pool.connection_pool.connection_kwargs
    chosen = {key: given[key] for key in ("db", "username", "password") if key in given}
    if "path" in given:
        return redis.Redis(unix_socket_path=given["path"], **chosen)
    ssl = "SSL" in pool.connection_pool.connection_class.__name__
    return redis.Redis(
        host=given.get("host", "localhost"), port=given.get("port", 6379), ssl=ssl,
        socket_connect_timeout=5, socket_timeout=5, **chosen,
    )  # fmt: skip


register_revoker("arq", _revoke)
