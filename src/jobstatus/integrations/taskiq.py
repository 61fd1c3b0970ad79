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

    @broker.task(jobstatus={"parent": "nightly"})        # joins the group "nightly"
    async def load(path): ...

    await export.kicker().with_labels(jobstatus_parent=g.job_id).kiq(rows)  # one message

``pre_send`` records ``queued`` in the client, before the message leaves;
``pre_execute`` records ``working`` in the worker, ``on_error`` keeps the
exception and ``post_execute`` records the outcome. A retry middleware's
re-send of the running task is seen by ``pre_send`` and recorded as
``queued`` again. Taskiq has no revoke of its own: a task whose cancel was
requested with ``jobstatus.cancel`` before it started is stopped by
``pre_execute``, which raises ``jobstatus.Cancelled`` (the task's code never
runs, and no result is stored); one that stops on ``Cancelled`` while it runs
is recorded ``cancelled`` and not retried. The mapping is in ``docs/taskiq.md``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from .._job import JobSpec
from ._common import (
    Attempt,
    aenqueue,
    apublisher_job,
    aworker_job,
    missing,
    parent_id,
    spec_of_options,
    task_spec,
)

try:
    from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
    from taskiq.exceptions import NoResultError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("taskiq", "Taskiq") from exc

__all__ = ["PARENT_LABEL", "StatusMiddleware"]

LABEL = "jobstatus"
#: The label that names the group a message's job joins (an id).
PARENT_LABEL = "jobstatus_parent"


# pre_execute and post_execute run in the same asyncio task, and a retry
# middleware re-sends the message from that task too: a context variable
# finds the attempt without a shared table.
_attempt: ContextVar[Attempt | None] = ContextVar("jobstatus_taskiq_attempt", default=None)


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
        self.spec = spec_of_options(store, job_options, "StatusMiddleware")

    # -- client side ----------------------------------------------------------------

    async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record ``queued`` before the message is sent (again ``queued`` for a retry)."""
        attempt = _attempt.get()
        if attempt is not None and attempt.job.job_id == message.task_id:
            # A retry middleware re-sends the running task; being cancelled, it is
            # recorded cancelled instead, and the re-sent message never runs.
            await attempt.arequeue(attempt.exc)
            return message
        if message.labels.get(PARENT_LABEL) is not None:
            message.labels[PARENT_LABEL] = parent_id(message.labels[PARENT_LABEL])
        spec = self._spec(message)
        if spec is not None:
            job = await apublisher_job(spec, message.task_id, _parent(message))
            await aenqueue(job, self._serialized(spec, message))
        return message

    # -- worker side ----------------------------------------------------------------

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record ``working`` and make the job current for the task.

        Raises:
            Cancelled: the job's cancel was requested before it started (it is
                recorded ``cancelled``): Taskiq then drops the message unrun.
        """
        spec = self._spec(message)
        if spec is None:
            return message
        attempt = Attempt(await aworker_job(spec, message.task_id, _parent(message)))
        if not await attempt.astart(self._serialized(spec, message)):
            raise attempt.cancelled()
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
        attempt.leave()
        if attempt.done:  # retried through pre_send
            return
        exc = attempt.exc if result.is_err else None
        if exc is None and result.is_err:
            exc = result.error
        if isinstance(exc, NoResultError):
            exc = None  # the task chose not to store a result: it did not fail
        elif result.is_err and isinstance(result.error, NoResultError):
            # A retry middleware replaced the error: the retry was scheduled
            # (by a schedule source, so no message went through pre_send).
            await attempt.arequeue(exc)
            return
        await attempt.afinish(exc)

    # -- helpers --------------------------------------------------------------------

    def _spec(self, message: TaskiqMessage) -> JobSpec | None:
        """The middleware's spec overridden by the task's ``jobstatus`` label."""
        task = self.broker.find_task(message.task_name) if self.broker is not None else None
        if task is not None:
            label = task.labels.get(LABEL, True)
        else:  # a task this process does not know: only the wire's label, a string
            label = str(message.labels.get(LABEL, True)).lower() != "false"
        return task_spec(self.spec, label, message.task_name)

    def _serialized(self, spec: JobSpec, message: TaskiqMessage) -> dict[str, Any]:
        queue = getattr(self.broker, "queue_name", None)
        queue = queue if isinstance(queue, str) else None
        return spec.serialized(message.task_id, message.args, message.kwargs, queue)


def _parent(message: TaskiqMessage) -> str | None:
    """The group named in the message's labels (None: its task's, if any)."""
    value = message.labels.get(PARENT_LABEL)
    return value if isinstance(value, str) and value else None
