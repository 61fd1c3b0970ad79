"""Dramatiq: a broker middleware that records every message's lifecycle.

::

    import dramatiq
    from jobstatus.integrations.dramatiq import StatusMiddleware

    broker = RedisBroker(url="redis://localhost:6379/0")
    broker.add_middleware(StatusMiddleware(includes={"status", "exception"}))
    dramatiq.set_broker(broker)

    @dramatiq.actor(jobstatus={"throttle_interval": 0.5})   # per-actor options
    def export(rows):
        status = jobstatus.current()
        ...

    message = export.send(rows)          # records queued
    jobstatus.get(message).status

    # a group (jobstatus.group()) for every message of an actor, or for one message:
    @dramatiq.actor(jobstatus={"parent": "nightly"})
    def load(path): ...
    export.send_with_options(args=(rows,), jobstatus_parent=g.job_id)

Every actor is tracked unless declared with ``jobstatus=False`` (or the
middleware is built with ``track_all=False``: then only actors declared with
``jobstatus=True`` or a dict). Its place among the broker's middleware does
not change what is recorded. A message whose cancel was requested with
``jobstatus.cancel`` before it started is skipped (its actor does not run); one
that stops on ``jobstatus.Cancelled`` (or dramatiq-abort's ``Abort``) is recorded
``cancelled`` and not retried. With dramatiq-abort installed and its ``Abortable``
middleware on the broker, ``jobstatus.cancel`` also aborts the message through it
(:func:`_revoke`). The mapping of Dramatiq's outcomes (retries,
``throws``, time limits, skipped messages) is in ``docs/dramatiq.md``.
"""

from __future__ import annotations

import weakref
from typing import Any

from .._config import store_or_default
from .._errors import Cancelled
from .._group import group
from .._job import JobSpec
from .._record import Record, exception_info
from .._revokers import register_revoker
from .._status import read_status
from ._common import (
    Attempt,
    Attempts,
    enqueue,
    missing,
    parent_id,
    publisher_job,
    quietly,
    spec_of_options,
    task_spec,
    worker_job,
)

try:
    from dramatiq import Broker, Middleware
    from dramatiq.errors import ActorNotFound
    from dramatiq.middleware import MiddlewareError, SkipMessage
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing("dramatiq", "Dramatiq") from exc

try:  # optional: with it, jobstatus.cancel aborts messages through its middleware
    import dramatiq_abort
    from dramatiq_abort.middleware import AbortMode
except ImportError:  # pragma: no cover - depends on the environment
    dramatiq_abort = None

__all__ = [
    "GROUP_NAME",
    "PARENT_OPTION",
    "InvalidParent",
    "MessageSkipped",
    "StatusMiddleware",
    "group_id_of",
]

#: The message option that names the group a message's job joins (an id or a Status).
PARENT_OPTION = "jobstatus_parent"
#: The ``name`` of the group record a Dramatiq ``group`` with a completion callback makes.
GROUP_NAME = "dramatiq.group"
# Dramatiq's own option on the messages of a group run with completion callbacks.
_COMPLETION_OPTION = "group_completion_uuid"
# The brokers a StatusMiddleware was added to in this process, for the revoker.
_brokers: weakref.WeakSet[Broker] = weakref.WeakSet()


class InvalidParent(MiddlewareError, ValueError):
    """Raised by ``send`` when a message's parent is not a group, would make a cycle or
    nests too deep (a ``ValueError``; a Dramatiq ``MiddlewareError`` too, which the
    broker lets through to the sender). Nothing is sent."""


class MessageSkipped(Exception):
    """Recorded for a message a middleware skipped (an age limit, for example)."""


class StatusMiddleware(Middleware):
    """Records queued (when sent), working, completed, failed and retries.

    Args:
        store: a store, URL or client (default: the configured one).
        track_all: track actors that do not set the ``jobstatus`` option.
        options: per-job options for every tracked actor (``expires_in``,
            ``throttle_interval``, ``includes``, ...); an actor's
            ``jobstatus={...}`` option overrides them.

    Raises:
        ConfigurationError: an unknown option or a bad value.

    How an exception is recorded waits for Dramatiq's Retries middleware: a
    retry is recorded as queued when the message is sent again, and a failure
    when the message is finally acknowledged or rejected.
    """

    def __init__(self, *, store: object = None, track_all: bool = True, **options: Any) -> None:
        self.spec = spec_of_options(store, options, "StatusMiddleware")
        self.track_all = track_all
        self._attempts = Attempts()
        self._groups_made: set[str] = set()  # Dramatiq groups recorded by this process

    @property
    def actor_options(self) -> set[str]:
        """``jobstatus``: True, False or a dict of per-job options, per actor."""
        return {"jobstatus"}

    def spec_of(self, broker: Broker, actor_name: str) -> JobSpec | None:
        """How an actor's messages are recorded, or None when they are not tracked."""
        try:
            setting = broker.get_actor(actor_name).options.get("jobstatus")
        except ActorNotFound:
            setting = None
        if setting is None and not self.track_all:
            return None
        return task_spec(self.spec, setting, actor_name)

    def after_declare_actor(self, broker: Broker, actor: Any) -> None:
        # Called for each actor, also those declared before the middleware was added.
        _brokers.add(broker)

    # -- publishing ----------------------------------------------------------------

    def before_enqueue(self, broker: Broker, message: Any, delay: int) -> None:
        attempt = self._attempts.get(message.message_id)
        if attempt is not None:
            # The message being processed is sent again: the Retries middleware
            # retries it. Queued is written before any worker can start it.
            attempt.requeue(attempt.exc)
            return
        spec = self.spec_of(broker, message.actor_name)
        try:
            if message.options.get(PARENT_OPTION) is not None:
                message.options[PARENT_OPTION] = parent_id(message.options[PARENT_OPTION])
            if spec is None:
                return
            self._join_dramatiq_group(spec, message)
            job = publisher_job(spec, message.message_id, _parent(message))
        except (TypeError, ValueError) as exc:
            raise InvalidParent(str(exc)) from exc  # the broker lets it reach send()
        enqueue(job, _serialized(spec, message))

    def _join_dramatiq_group(self, spec: JobSpec, message: Any) -> None:
        """A message of a Dramatiq ``group`` run with completion callbacks (the only
        kind whose messages carry the group's id) joins a group record under that id."""
        completion = message.options.get(_COMPLETION_OPTION)
        if message.options.get(PARENT_OPTION) is not None or not isinstance(completion, str):
            return
        if completion not in self._groups_made:
            with quietly(message.message_id, "its Dramatiq group"):
                group(name=GROUP_NAME, group_id=completion, store=spec.store)  # idempotent
                self._groups_made.add(completion)
        if completion in self._groups_made:
            message.options[PARENT_OPTION] = completion

    # -- processing (a worker thread) -----------------------------------------------

    def before_process_message(self, broker: Broker, message: Any) -> None:
        spec = self.spec_of(broker, message.actor_name)
        if spec is None:
            return
        attempt = Attempt(worker_job(spec, message.message_id, _parent(message)))
        runs = attempt.start(_serialized(spec, message))
        self._attempts.carry(attempt, message)  # a retry may start before this ack
        if not runs:
            raise SkipMessage("cancelled before it started")  # recorded cancelled

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        attempt = Attempts.carried(message)
        if attempt is None:
            return
        attempt.leave()
        if exception is not None and (_is_cancel(exception) or attempt.job.cancel_seen):
            # Middleware run their after hooks last added first: when Retries runs
            # after this (the usual order), it fails the message instead of retrying.
            message.options["max_retries"] = 0
            # Dramatiq before 2.0 reads a max_retries of 0 as unset (``or`` the actor's):
            # retries already past any limit stop it there too.
            message.options["retries"] = max(message.options.get("retries", 0), 2**31)
            if not attempt.done:
                attempt.exc = _as_cancelled(message.message_id, exception)
            return
        if exception is None:
            attempt.finish()
        elif attempt.done:
            # Placed before Retries, this hook runs after the retry was sent: add its exception.
            if "exception" in attempt.job.options.includes:
                with quietly(attempt.job.job_id, "the retry's exception"):
                    attempt.job.status.update(exception=exception_info(exception), force=True)
        else:
            attempt.exc = exception  # failed or retried: decided by the Retries middleware

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        attempt = Attempts.carried(message)
        if attempt is None:
            spec = self.spec_of(broker, message.actor_name)
            if spec is None:
                return
            attempt = Attempt(spec.job(message.message_id))
            self._attempts.carry(attempt, message)
        attempt.leave()
        attempt.exc = None if attempt.done else _why_skipped(attempt, broker, message)

    # -- acknowledging (the consumer thread) ------------------------------------------

    def before_ack(self, broker: Broker, message: Any) -> None:
        """The message is done with: record its exception as failed unless it was retried."""
        attempt = Attempts.carried(message)
        if attempt is None:
            return
        self._attempts.discard(attempt)
        if attempt.exc is not None:
            attempt.finish(attempt.exc)

    before_nack = before_ack


def group_id_of(dramatiq_group: Any, *, store: object = None) -> str | None:
    """The id of the group record of a Dramatiq ``group`` that ran with a completion
    callback (Dramatiq keeps its id on the messages it sent, not on the group), read
    from its first message's record; None when it has none.

    Raises:
        StoreError: the store failed.

    Example::

        g = dramatiq.group(load.message(path) for path in paths)
        g.add_completion_callback(report.message())
        g.run()
        jobstatus.get(group_id_of(g)).progress.percent
    """
    first = dramatiq_group.children[0] if dramatiq_group.children else None
    while first is not None and not hasattr(first, "message_id"):  # a pipeline: its last
        first = first.messages[-1] if hasattr(first, "messages") else None
    if first is None:
        return None
    parent = read_status(store_or_default(store), first.message_id).get("parent")
    return parent if isinstance(parent, str) else None


def _parent(message: Any) -> str | None:
    """The group named in the message's options (None: its actor's, if any)."""
    value = message.options.get(PARENT_OPTION)
    return value if isinstance(value, str) else None


def _why_skipped(attempt: Attempt, broker: Broker, message: Any) -> BaseException | None:
    """What a middleware's skip records: ``Cancelled`` when the job's cancel is pending
    (dramatiq-abort's ``Abortable``, placed before this middleware, skipped it before
    the start hook could refuse it), nothing when it is finished already (a redelivery
    of a cancelled message), else :class:`MessageSkipped`. Skips are rare: the one read
    is worth it.

    A skip that leaves the message unfailed on a broker with ``Abortable`` is
    ``dramatiq_abort.abort(id, mode=AbortMode.CANCEL)`` called directly: ``Abortable``
    takes its event and skips the message without failing it. The middleware that skip
    for a fault (the age limit, retries) fail the message first.
    """
    job_id = attempt.job.job_id
    with quietly(job_id, "why it was skipped"):
        record = read_status(attempt.job.store, job_id)
        cancel = record.get("cancel")
        if isinstance(cancel, dict):
            if record.get("status") not in ("queued", "working"):
                return None
            reason = cancel.get("reason")
            return Cancelled(job_id, reason if isinstance(reason, str) else None)
    if not getattr(message, "failed", True) and _abortable_of(broker) is not None:
        return Cancelled(job_id, "aborted by dramatiq-abort before it ran")
    return MessageSkipped("skipped by a middleware")


def _is_cancel(exc: BaseException) -> bool:
    """``jobstatus.Cancelled``, or dramatiq-abort's ``Abort`` (when it is installed)."""
    if dramatiq_abort is not None and isinstance(exc, dramatiq_abort.Abort):
        return True
    return isinstance(exc, Cancelled)


def _as_cancelled(job_id: str, exc: BaseException) -> BaseException:
    return exc if isinstance(exc, Cancelled) else Cancelled(job_id, str(exc) or None)


def _serialized(spec: JobSpec, message: Any) -> dict[str, Any]:
    return spec.serialized(
        message.message_id,
        message.args,
        message.kwargs,
        message.queue_name,
        retries=message.options.get("retries", 0),
    )


# -- cancel: jobstatus.cancel aborts the message through dramatiq-abort too ------------


def _abortable_of(broker: Broker) -> Any:
    """The broker's dramatiq-abort ``Abortable`` middleware, or None."""
    if dramatiq_abort is None:
        return None
    return next((m for m in broker.middleware if isinstance(m, dramatiq_abort.Abortable)), None)


def _revoke(job_id: str, record: Record) -> None:
    """The revoker (see jobstatus._cancel): dramatiq-abort's ``abort`` of a message of
    an actor of a broker with this middleware and an ``Abortable``.

    A queued message is aborted with ``AbortMode.CANCEL`` (the worker skips it: it
    never runs, recorded ``cancelled``); a running one with ``AbortMode.ABORT`` (its
    worker thread raises ``Abort``, even in code that makes no progress call: recorded
    ``cancelled``, not retried). Without an ``Abortable``, nothing: the start hook
    refuses the message, or it raises ``Cancelled`` at its next progress call.
    """
    status, name = record.get("status"), record.get("name")
    if status not in ("queued", "working") or not isinstance(name, str):
        return
    for broker in list(_brokers):
        abortable = _abortable_of(broker)
        if abortable is not None and name in broker.get_declared_actors():
            mode = AbortMode.CANCEL if status == "queued" else AbortMode.ABORT
            dramatiq_abort.abort(job_id, middleware=abortable, mode=mode)
            return


if dramatiq_abort is not None:
    register_revoker("dramatiq", _revoke)
