"""The arguments of ``recent()``, checked before any I/O (both sides call these)."""

from __future__ import annotations

from datetime import datetime, timezone

from ._record import STATES, check_name, parse_iso, validate_job_id

MAX_RECENT = 10_000


def check_recent(status: str | None, limit: int, before: object) -> float | None:
    """``before`` as epoch seconds (None: no bound), once status and limit are valid.

    Raises:
        ValueError: a bad status, limit or before.
    """
    if status is not None and status not in STATES:
        raise ValueError(f"status must be one of {', '.join(STATES)} or None; got {status!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT:
        raise ValueError(f"limit must be an int from 1 to {MAX_RECENT}; got {limit!r}")
    if before is None:
        return None
    if isinstance(before, datetime):
        return (before if before.tzinfo else before.replace(tzinfo=timezone.utc)).timestamp()
    epoch = parse_iso(before)
    if epoch is None:
        raise ValueError(f"before must be an ISO 8601 updated_at or a datetime; got {before!r}")
    return epoch


def check_search(name: str | None, prefix: str | None) -> None:
    """Raises TypeError or ValueError for a name or an id prefix a record cannot hold."""
    if name is not None:
        check_name(name)
    if prefix is not None:
        validate_job_id(prefix)  # a prefix of an id is a valid id itself
