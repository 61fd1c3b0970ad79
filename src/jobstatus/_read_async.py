"""Reading statuses, written once for both sides.

``_read_async.py`` is the source and scripts/unasync.py generates
``_read_sync.py`` from it; :mod:`jobstatus._read` holds both.
"""

from __future__ import annotations

import time
from datetime import datetime

from ._config import settings, store_or_default
from ._query import check_recent, check_search
from ._record import job_id_of
from ._status import Status, aread_status
from .stores.base import acall_store, listing_of


async def aget(job_or_id: object, *, store: object = None) -> Status:
    """Async twin of :func:`get`."""
    # sync: """Read one job's status: a snapshot, one round trip.
    # sync:
    # sync: An unknown or expired id gives a Status with ``exists`` False and
    # sync: ``status`` None, never an error.
    # sync:
    # sync: Raises:
    # sync:     TypeError, ValueError: a malformed id (before any I/O).
    # sync:     StoreError: the store failed; a broken store never reads as empty.
    # sync:
    # sync: Example::
    # sync:
    # sync:     s = jobstatus.get(job_id)
    # sync:     print(s.status, s.progress.percent)
    # sync: """
    job_id = job_id_of(job_or_id)
    return await aread_status(store_or_default(store), job_id)


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
    # sync: """Snapshots of recent jobs, newest ``updated_at`` first.
    # sync:
    # sync: Args:
    # sync:     status: only jobs in this state.
    # sync:     limit: at most this many (1 to 10,000).
    # sync:     before: only jobs last updated before this ``updated_at``; pass the
    # sync:         last one of a page to get the next page.
    # sync:     name: only jobs of this task name.
    # sync:     prefix: only jobs whose id starts with this.
    # sync:
    # sync: Raises:
    # sync:     NotSupportedError: the store cannot list (memcached, a generic cache).
    # sync:     ValueError: a bad status, limit, before, name or prefix.
    # sync:     StoreError: the store failed.
    # sync:
    # sync: Example::
    # sync:
    # sync:     for s in jobstatus.recent(status="failed", name="reports.export", limit=20):
    # sync:         print(s.job_id, s["exception"]["message"] if "exception" in s else "")
    # sync: """
    before_epoch = check_recent(status, limit, before)
    check_search(name, prefix)
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
    return [Status(job_id, record, chosen) for job_id, record in rows]


async def acounts(*, store: object = None) -> dict[str, int]:
    """Async twin of :func:`counts`."""
    # sync: """How many jobs the store holds in each state, exactly, plus ``stale``.
    # sync:
    # sync: ``{"queued": n, "working": n, "completed": n, "failed": n, "cancelled": n,
    # sync: "stale": n}``; stale jobs (working, silent past ``stale_after``) are working
    # sync: jobs, counted in both. Read from the store's indexes, never by reading each
    # sync: record: the same cost at a million records as at a thousand.
    # sync:
    # sync: Raises:
    # sync:     NotSupportedError: the store cannot list (memcached, a generic cache).
    # sync:     StoreError: the store failed.
    # sync:
    # sync: Example::
    # sync:
    # sync:     if jobstatus.counts()["failed"]:
    # sync:         ...
    # sync: """
    listing = listing_of(store_or_default(store))
    found = await acall_store(listing.acount_by_status)
    cut_off = time.time() - settings.options.stale_after
    return {**found, "stale": await acall_store(listing.acount_stale, cut_off)}
