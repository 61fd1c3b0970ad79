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

Every actor is tracked unless declared with ``jobstatus=False`` (or the
middleware is built with ``track_all=False``: then only actors declared with
``jobstatus=True`` or a dict). Its place among the broker's middleware does
not change what is recorded. The mapping of Dramatiq's outcomes (retries, ``throws``, time
limits, skipped messages) is in ``docs/dramatiq.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._config import announce_store
from .._errors import ConfigurationError
from .._record import exception_info
from ._common import Running, RunningJobs, Tracking, quietly, serialized, tracking_from

try:
    from dramatiq import Broker, Middleware
    from dramatiq.errors import ActorNotFound
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "jobstatus.integrations.dramatiq needs Dramatiq: pip install 'jobstatus[dramatiq]'"
    ) from exc

__all__ = ["MessageSkipped", "StatusMiddleware"]


class MessageSkipped(Exception):
    """Recorded for a message a middleware skipped (an age limit, for example)."""


@dataclass
class _Run(Running):
    """A message being processed: its exception waits for the retry decision."""

    exception: BaseException | None = None


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
        tracking = tracking_from({"store": store, **options}, "StatusMiddleware")
        assert tracking is not None
        self.tracking = tracking
        self.track_all = track_all
        self._running = RunningJobs()

    @property
    def actor_options(self) -> set[str]:
        """``jobstatus``: True, False or a dict of per-job options, per actor."""
        return {"jobstatus"}

    def tracking_of(self, broker: Broker, actor_name: str) -> Tracking | None:
        """How an actor's messages are tracked, or None when they are not."""
        try:
            setting = broker.get_actor(actor_name).options.get("jobstatus")
        except ActorNotFound:
            setting = None
        if setting is False or (setting is None and not self.track_all):
            return None
        own = tracking_from(setting, f"actor {actor_name!r}")
        return self.tracking if own is None else self.tracking.merged(own)

    # -- publishing ----------------------------------------------------------------

    def before_enqueue(self, broker: Broker, message: Any, delay: int) -> None:
        running = self._running.get(message.message_id)
        if isinstance(running, _Run):
            # The message being processed is sent again: the Retries middleware
            # retries it. Queued is written before any worker can start it.
            running.requeue(running.exception)
            return
        tracking = self.tracking_of(broker, message.actor_name)
        if tracking is None:
            return
        job = tracking.job(message.message_id)
        quietly(lambda: job.enqueued(_description(message)), message.message_id, "queued")

    # -- processing (a worker thread) -----------------------------------------------

    def before_process_message(self, broker: Broker, message: Any) -> None:
        tracking = self.tracking_of(broker, message.actor_name)
        if tracking is None:
            return
        running = _Run(tracking.job(message.message_id))
        announce_store(running.job.store, "Dramatiq")
        quietly(lambda: running.job.started(_description(message)), message.message_id, "working")
        running.token = running.job.enter()
        self._running.add(running)

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        running = self._leave(message)
        if running is None:
            return
        if exception is None:
            running.finish(None)
        elif running.requeued:
            # Placed before Retries, this hook runs after the retry was sent: add its exception.
            self._note_retry_exception(running, exception)
        else:
            running.exception = exception  # failed or retried: decided by the Retries middleware

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        running = self._leave(message)
        if running is None:
            tracking = self.tracking_of(broker, message.actor_name)
            if tracking is None:
                return
            running = _Run(tracking.job(message.message_id))
            self._running.add(running)
        running.exception = MessageSkipped("skipped by a middleware")

    @staticmethod
    def _note_retry_exception(running: _Run, exception: BaseException) -> None:
        if "exception" not in running.job.options.includes:
            return
        info = exception_info(exception)
        quietly(
            lambda: running.job.status.update(exception=info, force=True),
            running.job.job_id,
            "the retry's exception",
        )

    def _leave(self, message: Any) -> _Run | None:
        running = self._running.get(message.message_id)
        if not isinstance(running, _Run):
            return None
        if running.token is not None:
            running.job.exit(running.token)
            running.token = None
        return running

    # -- acknowledging (the consumer thread) ------------------------------------------

    def before_ack(self, broker: Broker, message: Any) -> None:
        self._settle(message)

    def before_nack(self, broker: Broker, message: Any) -> None:
        self._settle(message)

    def _settle(self, message: Any) -> None:
        """The message is done with: record its exception as failed unless it was retried."""
        running = self._running.pop(message.message_id)
        if isinstance(running, _Run) and running.exception is not None:
            running.finish(running.exception)


def _description(message: Any) -> dict[str, Any]:
    return serialized(
        message.actor_name,
        message.args,
        message.kwargs,
        message.queue_name,
        message.message_id,
        retries=message.options.get("retries", 0),
    )
