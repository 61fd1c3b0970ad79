"""What each lifecycle event writes (SPEC section 4). Pure: builds Changes, does no I/O.

| event    | record                                                 |
|----------|--------------------------------------------------------|
| enqueued | status queued, queued_at (+ serialized_job)            |
| started  | status working, started_at, attempts + 1               |
| returned | status completed, finished_at                          |
| raised   | status failed, finished_at (+ exception)               |
| retrying | status queued (attempts kept)                          |

Each include gates its own keys: with ``includes`` empty, events write nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._config import JobOptions
from ._record import Change, Record, exception_info, json_safe, utc_now_iso


def _change(options: JobOptions, fields: Record, incr: dict[str, float] | None = None) -> Change:
    return Change(
        set=fields, incr=incr or {}, ttl=options.expires_in, finished_ttl=options.finished_ttl
    )


def enqueued(options: JobOptions, serialized_job: Mapping[str, Any] | None = None) -> Change:
    fields: Record = {}
    if "status" in options.includes:
        fields.update(status="queued", queued_at=utc_now_iso())
    if serialized_job is not None and "serialized_job" in options.includes:
        fields["serialized_job"] = json_safe(dict(serialized_job))
    return _change(options, fields)


def started(options: JobOptions, serialized_job: Mapping[str, Any] | None = None) -> Change:
    if "status" not in options.includes:
        fields: Record = {}
        incr: dict[str, float] = {}
    else:
        fields = {"status": "working", "started_at": utc_now_iso()}
        incr = {"attempts": 1}
    if serialized_job is not None and "serialized_job" in options.includes:
        fields["serialized_job"] = json_safe(dict(serialized_job))
    return _change(options, fields, incr)


def returned(options: JobOptions) -> Change:
    if "status" not in options.includes:
        return _change(options, {})
    return _change(options, {"status": "completed", "finished_at": utc_now_iso()})


def raised(options: JobOptions, exc: BaseException | None) -> Change:
    fields: Record = {}
    if "status" in options.includes:
        fields.update(status="failed", finished_at=utc_now_iso())
    if exc is not None and "exception" in options.includes:
        fields["exception"] = exception_info(exc)
    return _change(options, fields)


def retrying(options: JobOptions, exc: BaseException | None = None) -> Change:
    fields: Record = {}
    if "status" in options.includes:
        fields["status"] = "queued"
    if exc is not None and "exception" in options.includes:
        fields["exception"] = exception_info(exc)
    return _change(options, fields)
