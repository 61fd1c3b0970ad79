"""``Status`` and ``Progress``: one job's record, to read and to write.

A Status from ``jobstatus.get()`` is a snapshot: reading it does no I/O, and
``refresh()`` returns a new one. Writing through it goes to the store at once.
The Status of a running job (``jobstatus.current()``) is live: it shows every
change the job made, and its writes are throttled as configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ._config import JobOptions, settings
from ._record import (
    FINISHED_STATES,
    Change,
    Record,
    cancel_pending,
    check_amount,
    check_fields,
    dumps,
    exception_info,
    parse_iso,
    utc_now_iso,
)
from ._status_async import AsyncStatusMethods
from ._status_sync import StatusMethods
from ._writer import Writer, progress_of
from .stores.base import Store, acall_store, call_store, listing_of

if TYPE_CHECKING:
    from ._batch import Batch
    from ._job import Job

_MISSING: Any = object()


class Progress:
    """How far a job has got: ``current`` out of ``total``.

    On a Status, setting ``current`` or ``total`` writes at once;
    ``increment()`` and ``decrement()`` are throttled. A Progress summed over
    a Batch is read-only.
    """

    __slots__ = ("_status", "_writer", "_current", "_total")

    def __init__(
        self, status: Status | None = None, *, current: float = 0, total: float | None = None
    ) -> None:
        self._status = status
        self._writer: Writer | None = None
        self._current = current
        self._total = total

    def __repr__(self) -> str:
        return f"Progress(current={self.current!r}, total={self.total!r})"

    @property
    def current(self) -> float:
        """Units done so far (0 when nothing was recorded)."""
        if self._status is None:
            return self._current
        held = self._writer.held() if self._writer is not None else 0
        return progress_of(self._status._record) + held

    @current.setter
    def current(self, value: float) -> None:
        self._owner().update(progress=value, force=True)

    @property
    def total(self) -> float | None:
        """Units in all, or None when unknown."""
        if self._status is None:
            return self._total
        value = self._status._record.get("total")
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @total.setter
    def total(self, value: float | None) -> None:
        self._owner().update(total=value, force=True)

    @property
    def ratio(self) -> float | None:
        """``current / total`` clamped to [0, 1]; None when total is unknown or 0."""
        total = self.total
        if not total:
            return None
        return min(max(self.current / total, 0.0), 1.0)

    @property
    def percent(self) -> float | None:
        """``ratio`` as a percentage, or None."""
        ratio = self.ratio
        return None if ratio is None else ratio * 100

    @property
    def rate(self) -> float | None:
        """Units per second since the job started, or None when it cannot be known."""
        status = self._status
        if status is None:
            return None
        started = parse_iso(status._record.get("started_at"))
        if started is None:
            return None
        until = time.time() if status._live else parse_iso(status._record.get("updated_at"))
        elapsed = (until or started) - started
        return self.current / elapsed if elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, 0 once finished, None when unknown."""
        status = self._status
        if status is not None and status.is_finished:
            return 0.0
        total, rate = self.total, self.rate
        if total is None or not rate:
            return None
        return max(total - self.current, 0) / rate

    def increment(self, by: float = 1) -> None:
        """Add ``by`` to ``current``; throttled inside a job.

        Raises:
            TypeError: ``by`` is not a number.
        """
        writer = self._writer or self._owner()._writer_for_write()
        if by.__class__ is int and by == 1:
            # The hot path: one atomic count and one comparison, no lock and no clock
            # (see Writer.ticks); the clock is read once the countdown runs out. A
            # cancel learnt ends the countdown (check_at -1): ticked() raises it.
            if next(writer.ticks) < writer.check_at:
                return
            writer.ticked()
            return
        if writer.cancel is not None:  # a local flag: the cancel check costs no I/O
            raise writer.cancelled()
        if by.__class__ is not int:
            check_amount("by", by)
        writer.add_progress(by)

    def decrement(self, by: float = 1) -> None:
        """Subtract ``by`` from ``current``; throttled inside a job."""
        if by.__class__ is not int:
            check_amount("by", by)
        self._owner()._writer_for_write().add_progress(-by)

    def finish(self) -> None:
        """Set ``current`` to ``total`` (when known) and write at once."""
        total = self.total
        if total is None:
            self._owner()._writer_for_write().flush()
        else:
            self.current = total

    def _owner(self) -> Status:
        if self._status is None:
            raise TypeError("this Progress is a read-only sum over a Batch")
        return self._status


class Status(StatusMethods, AsyncStatusMethods):
    """One job's status record.

    Read it like a mapping (``s["step"]``, ``s.get("step")``, ``"step" in s``)
    and through its properties. Write with ``s["key"] = value`` or
    ``s.update(...)``.
    """

    __slots__ = ("_job_id", "_exists", "_record", "_store", "_job", "_writer", "_live", "_progress")

    #: What ``children`` returns: jobstatus.Batch, which sits in the layer above
    #: (a Batch is made of Statuses) and installs itself here when it is defined.
    batch_class: ClassVar[Callable[..., Batch] | None] = None

    def __init__(
        self,
        job_id: str,
        record: Record | None,
        store: Store,
        *,
        job: Job | None = None,
        writer: Writer | None = None,
    ) -> None:
        self._job_id = job_id
        self._exists = record is not None
        self._record: Record = record if record is not None else {}
        self._store = store
        self._job = job
        self._writer = writer
        self._live = job is not None
        self._progress: Progress | None = None

    def __repr__(self) -> str:
        return f"<Status {self._job_id!r} {self.status or 'unknown'} {self.progress!r}>"

    # -- reading -----------------------------------------------------------------

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._job_id

    @property
    def status(self) -> str | None:
        """``queued``, ``working``, ``completed``, ``failed``, ``cancelled``, or None
        when unknown."""
        value = self._record.get("status")
        return value if isinstance(value, str) else None

    @property
    def exists(self) -> bool:
        """False for an unknown or expired id."""
        return self._exists or bool(self._record)

    @property
    def is_queued(self) -> bool:
        """The job waits to run."""
        return self.status == "queued"

    @property
    def is_working(self) -> bool:
        """The job is running."""
        return self.status == "working"

    @property
    def is_completed(self) -> bool:
        """The job returned."""
        return self.status == "completed"

    @property
    def is_failed(self) -> bool:
        """The job raised, or was killed or stopped by a time limit."""
        return self.status == "failed"

    @property
    def is_cancelled(self) -> bool:
        """The job stopped because it was cancelled (or revoked by its queue)."""
        return self.status == "cancelled"

    @property
    def is_finished(self) -> bool:
        """Completed, failed or cancelled."""
        return self.status in FINISHED_STATES

    @property
    def cancel_requested(self) -> bool:
        """A cancel was requested and the job has not stopped yet. Reading it never raises.

        Inside a running job it turns True once the request reached the process
        (by the store's push, or the reply to the job's next write or heartbeat).
        """
        writer = self._writer
        if writer is not None and writer.in_job:
            return writer.cancel is not None
        return cancel_pending(self._record)

    @property
    def name(self) -> str | None:
        """The task's name (Celery task name, RQ function, ``track(name=...)``), or None."""
        value = self._record.get("name")
        return value if isinstance(value, str) else None

    @property
    def history(self) -> list[Record]:
        """Each transition, oldest first: ``{"status", "at", "attempt"}`` (a copy).

        At most ``history_limit`` entries; ``cancel_requested`` appears too, progress
        ticks never. Empty for an unknown job.
        """
        stored = self._record.get("history")
        if not isinstance(stored, list):
            return []
        return [dict(entry) for entry in stored if isinstance(entry, dict)]

    @property
    def children(self) -> Batch:
        """A group's children, as a Batch (listed from the store, newest first).

        Raises:
            NotSupportedError: the store cannot list (memcached, a generic cache).
            StoreError: the store failed.
        """
        if Status.batch_class is None:
            raise RuntimeError("jobstatus._batch was not imported")  # import jobstatus does
        ids = call_store(listing_of(self._store).child_ids, self._job_id)
        return Status.batch_class(ids, store=self._store)

    @property
    def is_stale(self) -> bool:
        """Working, but silent for longer than ``stale_after`` (configure()): its worker
        probably died. A running job writes at least every ``heartbeat_interval``."""
        return self.is_stale_after(settings.options.stale_after)

    def is_stale_after(self, seconds: float) -> bool:
        """Working, and ``updated_at`` is more than ``seconds`` ago."""
        if not self.is_working:
            return False
        updated = parse_iso(self._record.get("updated_at"))
        return updated is not None and time.time() - updated > seconds

    @property
    def progress(self) -> Progress:
        """The job's progress (``current``, ``total``, ``ratio``, ``eta``, ...)."""
        if self._progress is None:
            # Made on first use: a Batch builds thousands of Statuses that never need one.
            self._progress = Progress(self)
            self._progress._writer = self._writer
        return self._progress

    def __getitem__(self, key: str) -> Any:
        return self._record[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._record.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._record

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._record))

    def __len__(self) -> int:
        return len(self._record)

    def to_dict(self) -> Record:
        """A copy of the record (``{}`` for an unknown id); a running job's shows held changes."""
        record = dict(self._record)
        if self._writer is not None and self._writer.held():
            record["progress"] = self.progress.current
        return record

    def to_json(self) -> str:
        """The record as compact JSON (``"{}"`` for an unknown id); nothing else."""
        return dumps(self.to_dict())

    # -- writing -----------------------------------------------------------------

    def _writer_for_write(self) -> Writer:
        writer = self._writer
        if writer is None:
            writer = self._writer = Writer(
                self._store, self._job_id, self._record, settings.options, in_job=False
            )
        elif writer.cancel is not None:
            raise writer.cancelled()
        self.progress._writer = writer
        return writer

    def _change(self, fields: Mapping[str, Any]) -> Change:
        writer = self._writer_for_write()
        options: JobOptions = writer.options
        return Change(
            set=check_fields(fields), ttl=options.expires_in, finished_ttl=options.finished_ttl
        )

    def __setitem__(self, key: str, value: Any) -> None:
        """Set one key and write at once."""
        self.update({key: value}, force=True)

    def catch_exception(self, exc: BaseException) -> None:
        """Mark the job failed with ``exc`` (for code that handles its own errors).

        Inside a job, the job stays failed even when it then returns.
        """
        if self._job is not None:
            self._job.mark_failed(exc)
            return
        fields: Record = {"status": "failed", "finished_at": utc_now_iso()}
        if "exception" in settings.options.includes:
            fields["exception"] = exception_info(exc)
        self.update(fields, force=True)

    # -- update, flush, cancel, delete, refresh, watch and wait (and their async
    # twins) are StatusMethods' and AsyncStatusMethods' (_status_async.py)

    def _snapshot(self, record: Record | None) -> Status:
        """A snapshot of this job holding ``record`` (None: unknown or expired)."""
        return Status(self._job_id, record, self._store)


def read_status(store: Store, job_id: str) -> Status:
    """A snapshot of ``job_id`` read from ``store`` (one round trip)."""
    return Status(job_id, call_store(store.read, job_id), store)


async def aread_status(store: Store, job_id: str) -> Status:
    """Async twin of :func:`read_status`."""
    return Status(job_id, await acall_store(store.aread, job_id), store)
