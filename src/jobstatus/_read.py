"""Reading statuses: ``get``, ``aget``, ``recent`` and ``arecent``."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ._config import settings, store_or_default
from ._record import STATES, Record, check_name, job_id_of, parse_iso, validate_job_id
from ._status import Status, aread_status, read_status
from .stores.base import Store, acall_store, call_store, listing_of

MAX_RECENT = 10_000


def get(job_or_id: object, *, store: object = None) -> Status:
    """Read one job's status: a snapshot, one round trip.

    An unknown or expired id gives a Status with ``exists`` False and
    ``status`` None, never an error.

    Raises:
        TypeError, ValueError: a malformed id (before any I/O).
        StoreError: the store failed; a broken store never reads as empty.

    Example::

        s = jobstatus.get(job_id)
        print(s.status, s.progress.percent)
    """
    job_id = job_id_of(job_or_id)
    return read_status(store_or_default(store), job_id)


async def aget(job_or_id: object, *, store: object = None) -> Status:
    """Async twin of :func:`get`."""
    job_id = job_id_of(job_or_id)
    return await aread_status(store_or_default(store), job_id)


def _check_recent(status: str | None, limit: int, before: object) -> float | None:
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


def _snapshots(store: Store, rows: list[tuple[str, Record]]) -> list[Status]:
    return [Status(job_id, record, store) for job_id, record in rows]


def recent(
    status: str | None = None,
    limit: int = 50,
    before: str | datetime | None = None,
    *,
    name: str | None = None,
    prefix: str | None = None,
    store: object = None,
) -> list[Status]:
    """Snapshots of recent jobs, newest ``updated_at`` first.

    Args:
        status: only jobs in this state.
        limit: at most this many (1 to 10,000).
        before: only jobs last updated before this ``updated_at``; pass the
            last one of a page to get the next page.
        name: only jobs of this task name.
        prefix: only jobs whose id starts with this.

    Raises:
        NotSupportedError: the store cannot list (memcached, a generic cache).
        ValueError: a bad status, limit, before, name or prefix.
        StoreError: the store failed.

    Example::

        for s in jobstatus.recent(status="failed", name="reports.export", limit=20):
            print(s.job_id, s["exception"]["message"] if "exception" in s else "")
    """
    before_epoch = _check_recent(status, limit, before)
    _check_search(name, prefix)
    chosen = store_or_default(store)
    listing = listing_of(chosen)
    if name is None and prefix is None:
        rows = call_store(listing.list_recent, status, limit, before_epoch)
    else:
        rows = call_store(
            lambda: listing.find(
                status=status, limit=limit, before=before_epoch, name=name, id_prefix=prefix
            )
        )
    return _snapshots(chosen, rows)


async def arecent(
    status: str | None = None,
    limit: int = 50,
    before: str | datetime | None = None,
    *,
    name: str | None = None,
    prefix: str | None = None,
    store: object = None,
) -> list[Status]:
    """Async twin of :func:`recent`."""
    before_epoch = _check_recent(status, limit, before)
    _check_search(name, prefix)
    chosen = store_or_default(store)
    listing = listing_of(chosen)
    if name is None and prefix is None:
        rows = await acall_store(listing.alist_recent, status, limit, before_epoch)
    else:
        rows = await acall_store(
            lambda: listing.afind(
                status=status, limit=limit, before=before_epoch, name=name, id_prefix=prefix
            )
        )
    return _snapshots(chosen, rows)


def _check_search(name: str | None, prefix: str | None) -> None:
    if name is not None:
        check_name(name)
    if prefix is not None:
        validate_job_id(prefix)  # a prefix of an id is a valid id itself


def counts(*, store: object = None) -> dict[str, int]:
    """How many jobs the store holds in each state, exactly, plus ``stale``.

    ``{"queued": n, "working": n, "completed": n, "failed": n, "cancelled": n,
    "stale": n}``; stale jobs (working, silent past ``stale_after``) are working
    jobs, counted in both. Read from the store's indexes, never by reading each
    record: the same cost at a million records as at a thousand.

    Raises:
        NotSupportedError: the store cannot list (memcached, a generic cache).
        StoreError: the store failed.

    Example::

        if jobstatus.counts()["failed"]:
            ...
    """
    listing = listing_of(store_or_default(store))
    found = call_store(listing.count_by_status)
    cut_off = time.time() - settings.options.stale_after
    return {**found, "stale": call_store(listing.count_stale, cut_off)}


async def acounts(*, store: object = None) -> dict[str, int]:
    """Async twin of :func:`counts`."""
    listing = listing_of(store_or_default(store))
    found = await acall_store(listing.acount_by_status)
    cut_off = time.time() - settings.options.stale_after
    return {**found, "stale": await acall_store(listing.acount_stale, cut_off)}
