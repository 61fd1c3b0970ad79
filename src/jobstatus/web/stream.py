"""The rules of a server-sent event stream, without I/O.

The Starlette app (over the hub) and the Django and Flask adapters (over the
store's blocking subscription, or a polling read) drive the same
:class:`EventStream`: they read records, ask the application's ``authorize``
hook, and send whatever the stream answers. :class:`StreamSlots` is the bound
on streams open at once in one process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from .._record import Record, parse_iso
from .core import ApiError, WebOptions, is_finished, job_json, to_json

SSE_KEEPALIVE: Final = ": keep-alive\n\n"
SSE_HEADERS: Final = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
SSE_MEDIA_TYPE: Final = "text/event-stream"


def sse_event(record: Record, *, event_id: str | None = None) -> str:
    """One server-sent event whose ``data`` is ``record`` as JSON (one line)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {to_json(record)}\n\n"


def event_id(record: Record) -> str | None:
    """A record's event id: its ``updated_at`` (an EventSource sends it back on reconnect)."""
    updated = record.get("updated_at")
    return updated if isinstance(updated, str) and updated.isprintable() else None


def is_newer(record: Record, than: Record | None) -> bool:
    """Whether ``record`` is a change to show after ``than`` (not a repeat, not older)."""
    if than is None:
        return True
    if record == than:
        return False
    new, old = parse_iso(record.get("updated_at")), parse_iso(than.get("updated_at"))
    return new is None or old is None or new >= old


class EventStream:
    """What one event stream sends, decided without I/O.

    The driver hands :meth:`event` the latest record it read of each job the
    stream still :meth:`watches` (None when the job is gone or the reader may
    no longer see it) and sends the text it answers; after each round it
    sends what :meth:`keepalive` answers, then waits at most
    :meth:`quiet_time` seconds for the next changes. The rules:

    - The first event of each job is its current record, except the one a
      resuming client already has (a one-job stream's ``Last-Event-ID``).
    - Each change sends a record newer than the last one sent; a repeat or an
      older record sends nothing.
    - Each event's ``data`` is the job as :func:`~jobstatus.web.core.job_json`
      serves it (with ``job_id``). A one-job stream's events carry
      ``id: <updated_at>``, which an EventSource sends back as ``Last-Event-ID``
      when it reconnects.
    - A job leaves the stream after its finished state, when it disappears
      or when the reader loses the right to see it; the stream is
      :attr:`over` when no job is left. A client that resumes at or after a
      finished job's final event gets no stream at all
      (:meth:`resumed_after_end`).
    - A keep-alive comment goes out after ``keepalive`` seconds with nothing sent.

    Example::

        stream = EventStream.of_job("report-1", options, resume_from=None)
        text = stream.event("report-1", record)  # the first event
    """

    def __init__(
        self,
        job_ids: Sequence[str],
        options: WebOptions,
        *,
        one_job: bool,
        resume_from: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_ids = tuple(job_ids)
        self.one_job = one_job
        self._options = options
        self._resume_from = resume_from
        self._clock = clock
        self._left: set[str] = set()
        self._shown: dict[str, Record] = {}
        self._last_sent = clock()

    @classmethod
    def of_job(
        cls, job_id: str, options: WebOptions, *, resume_from: str | None = None
    ) -> EventStream:
        """The stream of ``GET /jobs/{id}/events``, resuming after ``resume_from`` if given."""
        return cls([job_id], options, one_job=True, resume_from=resume_from)

    @classmethod
    def of_jobs(cls, job_ids: Iterable[str], options: WebOptions) -> EventStream:
        """The stream of ``GET /events?ids=...``."""
        return cls(list(job_ids), options, one_job=False)

    def resumed_after_end(self, record: Record) -> bool:
        """Whether the resuming client already has this finished job's final event.

        An EventSource reconnects whenever its stream closes, ``Last-Event-ID``
        set to the last event it received; after a job's final event that is the
        final event's id (or, from an odd client, a later one). Such a request
        gets a 204 and no stream: the one answer that tells an EventSource to
        stop reconnecting. Sending the final state again would make a client
        that does not close its EventSource itself reconnect, and be sent it,
        forever.
        """
        resume_from = self._resume_from
        if not resume_from or not is_finished(record):
            return False
        final = event_id(record)
        if final is None:
            return False
        if resume_from == final:
            return True
        seen, last = parse_iso(resume_from), parse_iso(final)
        return seen is not None and last is not None and seen >= last

    @property
    def watched(self) -> list[str]:
        """The jobs still in the stream, in the order the request named them."""
        return [job_id for job_id in self.job_ids if job_id not in self._left]

    def watches(self, job_id: str) -> bool:
        """Whether a change of ``job_id`` may still send an event."""
        return job_id in self.job_ids and job_id not in self._left

    @property
    def over(self) -> bool:
        """Every job has left the stream: end it."""
        return len(self._left) == len(self.job_ids)

    def event(self, job_id: str, record: Record | None) -> str | None:
        """The event to send for the latest ``record`` of ``job_id``, if any.

        ``record`` is None when the job is gone or the reader may not see it:
        the job leaves the stream.
        """
        if not self.watches(job_id):
            return None
        if record is None:
            self._left.add(job_id)
            return None
        shown = self._shown.get(job_id)
        text = None
        if shown is None and self._resume_from and event_id(record) == self._resume_from:
            self._shown[job_id] = record  # the resuming client has it already
        elif is_newer(record, shown):
            self._shown[job_id] = record
            text = self._text(job_id, record)
            self._last_sent = self._clock()
        if is_finished(record):
            self._left.add(job_id)
        return text

    def _text(self, job_id: str, record: Record) -> str:
        served = job_json(job_id, record, self._options)
        return sse_event(served, event_id=event_id(record) if self.one_job else None)

    def keepalive(self) -> str | None:
        """A keep-alive comment when nothing was sent for ``keepalive`` seconds."""
        now = self._clock()
        if now - self._last_sent < self._options.keepalive:
            return None
        self._last_sent = now
        return SSE_KEEPALIVE

    def quiet_time(self) -> float:
        """Seconds to wait for changes before the next keep-alive is due."""
        return max(0.0, self._last_sent + self._options.keepalive - self._clock())


class StreamSlots:
    """The bound on event streams open at once in one process (``max_streams``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()  # WSGI servers open streams from many threads

    def take(self) -> Callable[[], None]:
        """Take a slot and return the function that gives it back (once, however often called).

        Raises:
            ApiError: 503 with ``Retry-After`` when every slot is taken.
        """
        with self._lock:
            if self.open >= self.limit:
                raise ApiError(
                    503,
                    f"too many event streams open ({self.limit}); try again later",
                    {"Retry-After": "5"},
                )
            self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self.open -= 1

        return release
