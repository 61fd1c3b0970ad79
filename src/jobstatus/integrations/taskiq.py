"""Taskiq: a middleware that records every task's lifecycle, on any broker.

::

    from taskiq import SimpleRetryMiddleware
    from taskiq_redis import ListQueueBroker
    from jobstatus.integrations.taskiq import StatusMiddleware

    broker = ListQueueBroker("redis://localhost:6379").with_middlewares(
        SimpleRetryMiddleware(), StatusMiddleware()   # list it last
    )

    @broker.task(jobstatus={"throttle_interval": 0.5})   # per-task options
    async def export(rows): ...

    @broker.task(jobstatus=False)                        # never tracked
    async def ping(): ...

``pre_send`` records ``queued`` in the client, before the message leaves;
``pre_execute`` records ``working`` in the worker, ``on_error`` keeps the
exception and ``post_execute`` records the outcome. A retry middleware's
re-send of the running task is seen by ``pre_send`` and recorded as
``queued`` again. The mapping is in ``docs/taskiq.md``.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from .._config import announce_store
from .._errors import ConfigurationError, StoreError
from .._job import Job
from .._status import Status
from ._common import Tracking, logger, serialized, tracking_from

try:
    from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
    from taskiq.exceptions import NoResultError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "jobstatus.integrations.taskiq needs Taskiq: pip install 'jobstatus[taskiq]'"
    ) from exc

__all__ = ["StatusMiddleware"]

LABEL = "jobstatus"


@dataclass
class _Attempt:
    """One run of a task in this worker, from ``pre_execute`` to ``post_execute``."""

    job: Job
    token: Token[Status | None] | None = None
    exc: BaseException | None = None
    requeued: bool = False


# pre_execute and post_execute run in the same asyncio task, and a retry
# middleware re-sends the message from that task too: a context variable
# finds the attempt without a shared table.
_attempt: ContextVar[_Attempt | None] = ContextVar("jobstatus_taskiq_attempt", default=None)


class StatusMiddleware(TaskiqMiddleware):
    """Record queued, working, completed, failed and retries for a broker's tasks.

    Args:
        store: a store, URL or client for these jobs (default: the configured one).
        job_options: per-job options (``expires_in``, ``throttle_interval``,
            ``includes``, ...); a task's ``jobstatus={...}`` label overrides them.

    Raises:
        ConfigurationError: an unknown option or a bad value.
    """

    def __init__(self, *, store: object = None, **job_options: Any) -> None:
        super().__init__()
        tracking = tracking_from({"store": store, **job_options}, "StatusMiddleware")
        assert tracking is not None
        self.tracking = tracking

    # -- client side ----------------------------------------------------------------

    async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record ``queued`` before the message is sent (again ``queued`` for a retry)."""
        attempt = _attempt.get()
        if attempt is not None and attempt.job.job_id == message.task_id:
            attempt.requeued = True  # a retry middleware re-sends the running task
            await _quietly(attempt.job.aretrying(attempt.exc), message.task_id)
            return message
        tracking = self._tracking(message)
        if tracking is not None:
            job = self._job(tracking, message.task_id)
            await _quietly(job.aenqueued(self._serialized(message)), message.task_id)
        return message

    # -- worker side ----------------------------------------------------------------

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record ``working`` and make the job current for the task."""
        tracking = self._tracking(message)
        if tracking is None:
            return message
        attempt = _Attempt(self._job(tracking, message.task_id))
        announce_store(attempt.job.store, "Taskiq")
        # Queued on the job's writer, not awaited: the task starts at once and
        # every later write of the job goes out after this one.
        attempt.job.started(self._serialized(message))
        attempt.token = attempt.job.enter()
        _attempt.set(attempt)
        return message

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        """Keep the exception for the outcome (or the retry)."""
        attempt = _attempt.get()
        if attempt is not None and attempt.exc is None:
            attempt.exc = exception

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Record ``completed`` or ``failed`` with the held changes, unless it was retried."""
        attempt = _attempt.get()
        if attempt is None or attempt.job.job_id != message.task_id:
            return
        _attempt.set(None)
        if attempt.token is not None:
            attempt.job.exit(attempt.token)
        if attempt.requeued:
            return
        exc = attempt.exc if result.is_err else None
        if exc is None and result.is_err:
            exc = result.error
        if isinstance(exc, NoResultError):
            exc = None  # the task chose not to store a result: it did not fail
        elif result.is_err and isinstance(result.error, NoResultError):
            # A retry middleware replaced the error: the retry was scheduled
            # (by a schedule source, so no message went through pre_send).
            await _quietly(attempt.job.aretrying(exc), message.task_id)
            return
        await _quietly(attempt.job.afinished(exc), message.task_id)

    # -- helpers --------------------------------------------------------------------

    def _tracking(self, message: TaskiqMessage) -> Tracking | None:
        """The middleware's options overridden by the task's ``jobstatus`` label."""
        task = self.broker.find_task(message.task_name) if self.broker is not None else None
        if task is not None:
            label = task.labels.get(LABEL, True)
        else:  # a task this process does not know: only the wire's label, a string
            label = str(message.labels.get(LABEL, True)).lower() != "false"
        own = tracking_from(label, f"task {message.task_name!r}")
        return None if own is None else self.tracking.merged(own)

    def _job(self, tracking: Tracking, task_id: str) -> Job:
        return Job(
            task_id,
            store=tracking.store,
            options=tracking.options,
            loop=asyncio.get_running_loop(),
        )

    def _serialized(self, message: TaskiqMessage) -> dict[str, Any]:
        queue = getattr(self.broker, "queue_name", None)
        return serialized(
            message.task_name,
            message.args,
            message.kwargs,
            queue if isinstance(queue, str) else None,
            message.task_id,
        )


async def _quietly(write: Any, job_id: str) -> None:
    try:
        await write
    except StoreError as exc:
        logger.warning("jobstatus could not record a change of job %r: %s", job_id, exc)
