"""Reading statuses: ``get``, ``aget``, ``recent`` and ``arecent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from ._config import settings
from ._errors import NotSupportedError, StoreError
from ._record import STATES, Record, parse_iso, validate_job_id
from ._status import Status
from .stores import resolve_store
from .stores.base import Listing, Store

T = TypeVar("T")

MAX_RECENT = 10_000
_ID_ATTRIBUTES = ("job_id", "message_id", "task_id", "id")


def job_id_of(job_or_id: object) -> str:
    """The id of an id string or a queue's own job object, validated.

    Accepts a Celery AsyncResult, RQ Job, Dramatiq Message, Huey Result, arq
    Job, Taskiq task handle, Django TaskResult or a Status.

    Raises:
        TypeError: not a str and no recognisable job object.
        ValueError: a malformed id.
    """
    if isinstance(job_or_id, str):
        return validate_job_id(job_or_id)
    for attribute in _ID_ATTRIBUTES:
        value = getattr(job_or_id, attribute, None)
        if isinstance(value, str):
            return validate_job_id(value)
    raise TypeError(
        f"expected a job id (str) or a queue's job object, not {type(job_or_id).__name__}"
    )


def store_or_default(store: object = None) -> Store:
    """The given store (URL, Store or client), else the configured one."""
    return settings.store() if store is None else resolve_store(store)


def call_store(method: Callable[..., T], *args: Any) -> T:
    """Call a store method; any non-StoreError failure becomes a StoreError too."""
    try:
        return method(*args)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc


async def acall_store(method: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Async twin of :func:`call_store`."""
    try:
        return await method(*args)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc


def read_status(store: Store, job_id: str) -> Status:
    return Status(job_id, call_store(store.read, job_id), store)


async def aread_status(store: Store, job_id: str) -> Status:
    return Status(job_id, await acall_store(store.aread, job_id), store)


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


def _listing(store: Store) -> Listing:
    if not isinstance(store, Listing):
        raise NotSupportedError(
            f"{store.describe()} cannot list jobs; memory, SQLite, Redis, Redis Cluster "
            "and PostgreSQL can"
        )
    return store


def _snapshots(store: Store, rows: list[tuple[str, Record]]) -> list[Status]:
    return [Status(job_id, record, store) for job_id, record in rows]


def recent(
    status: str | None = None,
    limit: int = 50,
    before: str | datetime | None = None,
    *,
    store: object = None,
) -> list[Status]:
    """Snapshots of recent jobs, newest ``updated_at`` first.

    Args:
        status: only jobs in this state.
        limit: at most this many (1 to 10,000).
        before: only jobs last updated before this ``updated_at``; pass the
            last one of a page to get the next page.

    Raises:
        NotSupportedError: the store cannot list (memcached, a generic cache).
        ValueError: a bad status, limit or before.
        StoreError: the store failed.
    """
    before_epoch = _check_recent(status, limit, before)
    chosen = store_or_default(store)
    rows = call_store(_listing(chosen).list_recent, status, limit, before_epoch)
    return _snapshots(chosen, rows)


async def arecent(
    status: str | None = None,
    limit: int = 50,
    before: str | datetime | None = None,
    *,
    store: object = None,
) -> list[Status]:
    """Async twin of :func:`recent`."""
    before_epoch = _check_recent(status, limit, before)
    chosen = store_or_default(store)
    rows = await acall_store(_listing(chosen).alist_recent, status, limit, before_epoch)
    return _snapshots(chosen, rows)
