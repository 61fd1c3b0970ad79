"""What the queue integrations share: per-task options, the running jobs of a
process, and recording outcomes that must never break the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any

from .._config import validate_options
from .._errors import ConfigurationError, StoreError
from .._job import Job
from .._status import Status

logger = logging.getLogger("jobstatus")


@dataclass(frozen=True)
class Tracking:
    """How one task's jobs are recorded: where, and with which per-job options."""

    store: object = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def job(self, job_id: str) -> Job:
        """A Job for ``job_id`` with these options."""
        return Job(job_id, store=self.store, options=self.options)

    def merged(self, other: Tracking) -> Tracking:
        """These settings overridden by ``other``'s (task options over app options)."""
        store = other.store if other.store is not None else self.store
        return Tracking(store, {**self.options, **other.options})


def tracking_from(value: object, where: str) -> Tracking | None:
    """Parse a task's ``jobstatus`` option: True, False/None, or a dict of options.

    The dict takes ``store`` (a URL, Store or client) and any per-job option of
    ``jobstatus.configure`` (``expires_in``, ``throttle_interval``, ``includes``, ...).

    Raises:
        ConfigurationError: an unknown option or a bad value, naming ``where``.
    """
    if value is None or value is False:
        return None
    if value is True:
        return Tracking()
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"the jobstatus option of {where} must be True, False or a dict of options, "
            f"not {value!r}"
        )
    options = dict(value)
    store = options.pop("store", None)
    try:
        return Tracking(store, validate_options(options))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def quietly(action: Callable[[], object], job_id: str, what: str) -> None:
    """Run a lifecycle write; a store failure is logged, never raised into the queue."""
    try:
        action()
    except StoreError as exc:
        logger.warning("jobstatus could not record %s for job %r: %s", what, job_id, exc)


@dataclass
class Running:
    """A job running in this process, between the queue's start and end hooks.

    Keeping the Job object from start to end means its held (throttled)
    changes go out with the final transition.
    """

    job: Job
    token: Token[Status | None] | None = None
    requeued: bool = False
    finished: bool = False

    def finish(self, exc: BaseException | None) -> None:
        """Record completed or failed once; a requeued job stays queued."""
        if self.finished or self.requeued:
            return
        self.finished = True
        quietly(lambda: self.job.finished(exc), self.job.job_id, "the outcome")

    def requeue(self, exc: BaseException | None) -> None:
        """Record queued again (a retry), once."""
        if self.finished or self.requeued:
            return
        self.requeued = True
        quietly(lambda: self.job.retrying(exc), self.job.job_id, "the retry")


class RunningJobs:
    """The jobs running in this process, by job id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Running] = {}

    def add(self, running: Running) -> None:
        with self._lock:
            self._jobs[running.job.job_id] = running

    def get(self, job_id: object) -> Running | None:
        if not isinstance(job_id, str):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def pop(self, job_id: object) -> Running | None:
        if not isinstance(job_id, str):
            return None
        with self._lock:
            return self._jobs.pop(job_id, None)


def serialized(
    name: str, args: Any, kwargs: Any, queue: str | None, job_id: str, **more: Any
) -> dict[str, Any]:
    """The ``serialized_job`` mapping (the core makes it JSON-safe)."""
    return {
        "name": name,
        "args": list(args or ()),
        "kwargs": dict(kwargs or {}),
        "queue": queue,
        "job_id": job_id,
        **more,
    }
