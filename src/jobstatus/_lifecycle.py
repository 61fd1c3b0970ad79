"""What each lifecycle event writes (SPEC section 4). Pure: builds Changes, does no I/O.

| event            | record                                                          |
|------------------|-----------------------------------------------------------------|
| enqueued         | status queued, queued_at, name, parent (+ serialized_job);      |
|                  | an older cancel request is dropped: the job was enqueued anew   |
| started          | status working, started_at, attempts + 1, name, parent;         |
|                  | only if no cancel is pending (the guard ``not_cancelled``)      |
| returned         | status completed, finished_at                                   |
| raised           | status failed, finished_at (+ exception)                        |
| retrying         | status queued (attempts kept)                                   |
| cancelled        | status cancelled, finished_at                                   |
| cancel requested | cancel {requested_at, reason}; only while queued or working     |

Every transition appends its status to ``history`` in the same write (the
store stamps each entry with the record's ``attempts``). Each include gates its
own keys: with ``includes`` empty, events write nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._config import JobOptions
from ._record import Change, Record, exception_info, json_safe, utc_now_iso


@dataclass(frozen=True)
class Identity:
    """What every transition of a job repeats about it: its name and its group."""

    name: str | None = None
    parent: str | None = None

    def fields(self) -> Record:
        known: Record = {}
        if self.name is not None:
            known["name"] = self.name
        if self.parent is not None:
            known["parent"] = self.parent
        return known


NOBODY = Identity()


def _change(
    options: JobOptions,
    fields: Record,
    *,
    incr: dict[str, float] | None = None,
    event: tuple[str, str] | None = None,
    guard: str | None = None,
    unset: tuple[str, ...] = (),
) -> Change:
    return Change(
        set=fields,
        incr=incr or {},
        unset=unset,
        ttl=options.expires_in,
        finished_ttl=options.finished_ttl,
        events=(event,) if event is not None and fields else (),
        guard=guard,
        history_limit=options.history_limit,
    )


def _tracks_status(options: JobOptions) -> bool:
    return "status" in options.includes


def enqueued(
    options: JobOptions,
    serialized_job: Mapping[str, Any] | None = None,
    identity: Identity = NOBODY,
) -> Change:
    fields: Record = {}
    unset: tuple[str, ...] = ()
    now = utc_now_iso()
    if _tracks_status(options):
        fields.update(status="queued", queued_at=now, **identity.fields())
        unset = ("cancel",)
    if serialized_job is not None and "serialized_job" in options.includes:
        fields["serialized_job"] = json_safe(dict(serialized_job))
    event = ("queued", now) if _tracks_status(options) else None
    return _change(options, fields, event=event, unset=unset)


def started(
    options: JobOptions,
    serialized_job: Mapping[str, Any] | None = None,
    identity: Identity = NOBODY,
    at: float | None = None,
) -> Change:
    """``working``, stamped ``at`` (epoch seconds; default now)."""
    fields: Record = {}
    incr: dict[str, float] = {}
    now = utc_now_iso(at)
    tracked = _tracks_status(options)
    if tracked:
        fields.update(status="working", started_at=now, **identity.fields())
        incr = {"attempts": 1}
    if serialized_job is not None and "serialized_job" in options.includes:
        fields["serialized_job"] = json_safe(dict(serialized_job))
    return _change(
        options,
        fields,
        incr=incr,
        event=("working", now) if tracked else None,
        guard="not_cancelled" if tracked else None,
    )


def _finished(options: JobOptions, status: str, fields: Record | None = None) -> Change:
    if not _tracks_status(options):
        return _change(options, dict(fields or {}))
    now = utc_now_iso()
    ended: Record = {"status": status, "finished_at": now, **(fields or {})}
    return _change(options, ended, event=(status, now))


def returned(options: JobOptions) -> Change:
    return _finished(options, "completed")


def raised(options: JobOptions, exc: BaseException | None) -> Change:
    fields: Record = {}
    if exc is not None and "exception" in options.includes:
        fields["exception"] = exception_info(exc)
    return _finished(options, "failed", fields)


def cancelled(options: JobOptions) -> Change:
    return _finished(options, "cancelled")


def retrying(options: JobOptions, exc: BaseException | None = None) -> Change:
    fields: Record = {}
    if _tracks_status(options):
        fields["status"] = "queued"
    if exc is not None and "exception" in options.includes:
        fields["exception"] = exception_info(exc)
    event = ("queued", utc_now_iso()) if _tracks_status(options) else None
    return _change(options, fields, event=event)


def cancel_requested(options: JobOptions, reason: str | None) -> Change:
    """A request to stop the job, recorded only while it is queued or working."""
    now = utc_now_iso()
    fields: Record = {"cancel": {"requested_at": now, "reason": reason}, "updated_at": now}
    return _change(options, fields, event=("cancel_requested", now), guard="unfinished")


def cancel_landed(record: Record | None, change: Change) -> bool:
    """Whether ``record``, read after ``change`` (a :func:`cancel_requested`) was written,
    shows that its guard held: its ``cancel`` is this request, or its history has this
    request's entry (a later cancel may have replaced the key).

    For a store whose ``write`` answers None rather than a ``Written``, which cannot
    say whether the guard held: a guard that did not hold wrote neither.
    """
    if record is None:
        return False
    if record.get("cancel") == change.set["cancel"]:
        return True
    history = record.get("history")
    entries = history if isinstance(history, list) else []
    return any(
        isinstance(entry, dict) and (entry.get("status"), entry.get("at")) == event
        for entry in entries
        for event in change.events
    )
