"""``Job``'s lifecycle transitions and its run, written once for both sides.

``_job_async.py`` is the source and scripts/unasync.py generates ``_job_sync.py``
from it; :class:`jobstatus._job.Job` is made of both mixins. What needs no I/O
(the lifecycle's changes, the metrics, the heartbeat and cancel registrations)
is Job's own, in ``_job.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import _lifecycle as lifecycle
from ._errors import Cancelled, StoreError
from ._record import Change, guard_holds

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ._config import JobOptions
    from ._job import Job
    from ._status import Status
    from ._writer import Writer

logger = logging.getLogger("jobstatus")

T = TypeVar("T")


class AsyncJobTransitions:
    """The async transitions of a :class:`~jobstatus._job.Job` and its ``arun``."""

    # sync: """The transitions of a :class:`~jobstatus._job.Job` and its ``run``."""

    if TYPE_CHECKING:  # what the transitions use of Job
        job_id: str
        options: JobOptions
        identity: lifecycle.Identity
        writer: Writer
        failed_by_hand: bool

        @property
        def cancel_seen(self) -> bool: ...
        def activate(self) -> AbstractContextManager[Status]: ...
        def _moved(self, status: str) -> None: ...
        def _began(self, started_at: float) -> None: ...
        def _ended(self, status: str) -> None: ...
        def _running(self) -> None: ...
        def _stopped(self) -> None: ...
        def _refused(self) -> Change: ...
        def _ending(self, exc: BaseException | None) -> str: ...
        def _final_change(self, ending: str, exc: BaseException | None) -> Change: ...

    async def _awrite(self, change: Change) -> None:
        await self.writer.asubmit(change, force=True)

    async def _astart_refused(self) -> bool:
        """Whether a start the store answered "not applied" was refused by a cancel.

        A start whose reply was lost (a dropped connection, a timeout) is sent
        again with its origin, and the store answers "not applied" for that
        duplicate, its first send being in the record: only a record that is
        cancelled, or holds a cancel request, refused the start. Read only then.
        """
        try:
            record = await self.writer.store.aread(self.job_id)
        except Exception:  # noqa: BLE001 - unknown: the guard's answer stands
            return True
        if not guard_holds(record, "not_cancelled"):
            return True
        if record is not None:
            self.writer.record.update(record)  # the start is in it: this job's view
        return False

    async def aenqueued(self, serialized_job: Mapping[str, Any] | None = None) -> None:
        """Async twin of :meth:`enqueued`."""
        # sync: """Record ``queued`` (from the publishing process)."""
        self._moved("queued")
        await self._awrite(lifecycle.enqueued(self.options, serialized_job, self.identity))

    async def astarted(self, serialized_job: Mapping[str, Any] | None = None) -> bool:
        """Async twin of :meth:`started`."""
        # sync: """Record ``working`` for this attempt, unless a cancel is pending; whether to run.
        # sync:
        # sync: False means the job was cancelled before it could start: it is recorded
        # sync: ``cancelled`` and its code must not run. While it runs, heartbeats keep
        # sync: its record fresh and cancel requests reach it.
        # sync: """
        at = time.time()  # started_at, kept unparsed for the meter's wait
        change = lifecycle.started(self.options, serialized_job, self.identity, at)
        if change and not await self.writer.awrite_guarded(change) and await self._astart_refused():
            self._ended("cancelled")
            await self.writer.awrite_guarded(self._refused())
            return False
        self._began(at)
        self._running()
        return True

    async def afinished(self, exc: BaseException | None = None) -> None:
        """Async twin of :meth:`finished`."""
        # sync: """Record how the attempt ended, with all held changes: ``completed`` (no
        # sync: ``exc``), ``failed``, or ``cancelled`` when it raised :class:`Cancelled` or
        # sync: returned after learning of a cancel request."""
        self._stopped()
        ending = self._ending(exc)
        self._ended(ending)
        await self._awrite(self._final_change(ending, exc))

    async def aretrying(self, exc: BaseException | None = None) -> bool:
        """Async twin of :meth:`retrying`."""
        # sync: """Record ``queued`` again, for a retry; whether the retry may go ahead.
        # sync:
        # sync: A job that is being cancelled is not retried: it is recorded ``cancelled``
        # sync: and this answers False.
        # sync: """
        self._stopped()
        self.failed_by_hand = False
        if self.cancel_seen or isinstance(exc, Cancelled):
            self._ended("cancelled")
            await self._awrite(lifecycle.cancelled(self.options))
            return False
        self._ended("queued")
        await self._awrite(lifecycle.retrying(self.options, exc))
        return True

    async def acancelled(self) -> None:
        """Async twin of :meth:`cancelled`."""
        # sync: """Record ``cancelled``: the job stopped (or will never run) because it was
        # sync: cancelled, or its queue revoked or aborted it."""
        self._stopped()
        self._ended("cancelled")
        await self._awrite(lifecycle.cancelled(self.options))

    async def arun(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        serialized_job: Mapping[str, Any] | None = None,
    ) -> T:
        """Async twin of :meth:`run`, for a coroutine function."""
        # sync: """Run ``fn(*args, **kwargs)`` as this job, recording its whole lifecycle.
        # sync:
        # sync: Raises:
        # sync:     Cancelled: the job was cancelled before it started (``fn`` did not run),
        # sync:         or while it ran; anything ``fn`` raises, unchanged.
        # sync: """
        if not await self.astarted(serialized_job):
            raise self.writer.cancelled()
        with self.activate():
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await self._afinish_quietly(exc)
                raise
        await self.afinished()
        return result

    async def _afinish_quietly(self, exc: BaseException) -> None:
        """Record the failure; a store error here must not hide the job's own exception."""
        try:
            await self.afinished(exc)
        except StoreError:
            logger.warning("jobstatus could not record job %r as failed", self.job_id)


class AsyncSpecRuns:
    """:meth:`~jobstatus._job.JobSpec.arun`: a coroutine function run as one job."""

    # sync: """:meth:`~jobstatus._job.JobSpec.run`: a function run as one job."""

    if TYPE_CHECKING:  # what it uses of JobSpec

        async def ajob(self, job_id: str, *, parent: object = None) -> Job: ...
        def serialized(
            self, job_id: str, args: Any, kwargs: Any, queue: str | None = None, **more: Any
        ) -> dict[str, Any]: ...

    async def arun(
        self,
        fn: Callable[..., Awaitable[Any]],
        job_id: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        parent: object = None,
    ) -> Any:
        """Run the coroutine function ``fn`` as the job ``job_id`` (writes on the loop)."""
        # sync: """Run ``fn`` as the job ``job_id``."""
        job = await self.ajob(job_id, parent=parent)
        return await job.arun(fn, args, kwargs, self.serialized(job_id, args, kwargs))
