"""Stores on Django's own machinery: a cache alias or the database.

- ``django-cache://default`` (:class:`DjangoCacheStore`): records in
  ``caches["default"]``. A Django cache has no atomic merge, so concurrent
  writers in several processes can lose one another's keys (it warns once).
  A per-process cache (``LocMemCache``) warns too, and ``DummyCache`` is refused:
  it would show every status as unknown.
- ``django-db://default`` (:class:`DjangoDatabaseStore`): records in the
  ``jobstatus_record`` table of a database alias (run ``migrate``). Writes are
  atomic merges: the row is locked with ``SELECT ... FOR UPDATE`` inside a
  transaction (on SQLite the insert that opens the transaction takes the
  write lock first), so increments from concurrent writers add up. It lists
  recent jobs.

Both import Django only when built, so this module imports without it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from ..._errors import ConfigurationError, StoreError
from ..._record import STATES, Change, Record, dumps, loads, loads_record, parse_iso
from ..._rollup import write_through
from ...stores._options import check_timeout
from ...stores.base import DEFAULT_TIMEOUT, Clock, Listing, Purge, Store, Written, require
from ...stores.cache import CacheStore, check_cache_options

PURGE_EVERY = 500  # writes per process between purges of expired rows
PURGE_BATCH = 1000  # rows removed per purge, so one write never stalls long
READ_CHUNK = 1000  # ids per query when reading a batch

P = ParamSpec("P")
T = TypeVar("T")


class PerProcessCacheWarning(UserWarning):
    """The Django cache lives in one process: workers' statuses will not show elsewhere."""


def _alias_from_url(url: str, scheme: str) -> str:
    parts = urlsplit(url)
    alias = (parts.netloc + parts.path).strip("/")
    if not alias:
        raise ConfigurationError(f"{url!r} names no alias; write {scheme}://default")
    return alias


_helpers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jobstatus-django")


def _off_loop(method: Callable[P, T]) -> Callable[P, T]:
    """``method``, run in a helper thread when called from a thread running an event
    loop: Django refuses ORM calls there, and a plain call from async code must work."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(*args, **kwargs)
        return _helpers.submit(method, *args, **kwargs).result()

    return call


class DjangoCacheStore(CacheStore):
    """Records in a Django cache alias (``django-cache://<alias>``).

    Args:
        alias: the key of ``settings.CACHES`` (default ``"default"``).
        prefix: prepended to every cache key (see :class:`~jobstatus.stores.CacheStore`).
        timeout: seconds a call may take (positive and finite).

    Raises:
        ConfigurationError: Django is not installed, the alias is unknown, the
            cache is a ``DummyCache`` (it stores nothing), or an option is wrong.

    Example::

        JOBSTATUS = {"STORE": "django-cache://default"}
    """

    def __init__(
        self,
        alias: str = "default",
        *,
        prefix: str = "jobstatus:",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        require("django", "django")
        check_cache_options(prefix, timeout)  # before the cache is looked up (and warned about)
        from django.core.cache import caches
        from django.core.cache.backends.base import InvalidCacheBackendError
        from django.core.cache.backends.dummy import DummyCache
        from django.core.cache.backends.locmem import LocMemCache
        from django.utils.connection import ConnectionProxy

        try:
            backend = caches[alias]
        except InvalidCacheBackendError as exc:
            raise ConfigurationError(f"no Django cache named {alias!r} in CACHES") from exc
        if isinstance(backend, DummyCache):
            raise ConfigurationError(
                f"the Django cache {alias!r} is a DummyCache, which stores nothing: every "
                "status would read as unknown. Point JOBSTATUS['STORE'] at a real cache."
            )
        if isinstance(backend, LocMemCache):
            warnings.warn(
                f"the Django cache {alias!r} is a LocMemCache: statuses written by worker "
                "processes will not show in other processes",
                PerProcessCacheWarning,
                stacklevel=2,
            )
        self.alias = alias
        # The proxy looks the cache up per call: Django's cache objects are per thread.
        super().__init__(ConnectionProxy(caches, alias), prefix=prefix, timeout=timeout)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DjangoCacheStore:
        """``django-cache://<alias>``."""
        return cls(_alias_from_url(url, "django-cache"), **options)

    def describe(self) -> str:
        return f"django-cache://{self.alias}"


class DjangoDatabaseStore(Listing, Purge, Store):
    """Records in the ``jobstatus_record`` table of a Django database alias.

    Needs ``"jobstatus.integrations.django"`` in ``INSTALLED_APPS`` and its
    migration applied (``manage.py migrate jobstatus``).

    Args:
        using: the database alias (default ``"default"``).
        clock: returns epoch seconds; inject one in tests to expire records.
        timeout: seconds a call may take (positive and finite).

    A write joins the caller's transaction when there is one (like any ORM
    write): the record appears when that transaction commits.

    Example::

        JOBSTATUS = {"STORE": "django-db://default"}
    """

    def __init__(
        self,
        using: str = "default",
        *,
        clock: Clock = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        require("django", "django")
        self.using = using
        self.timeout = check_timeout(timeout)
        self._clock = clock
        self._writes = 0
        self._writes_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DjangoDatabaseStore:
        """``django-db://<alias>``."""
        return cls(_alias_from_url(url, "django-db"), **options)

    def describe(self) -> str:
        return f"django-db://{self.using}"

    def _rows(self) -> Any:
        from .models import JobStatusRecord

        return JobStatusRecord.objects.using(self.using)

    @contextmanager
    def _database(self, what: str) -> Iterator[None]:
        from django.db import DatabaseError, connections

        connection = connections[self.using]
        opened_here = connection.connection is None
        try:
            yield
        except DatabaseError as exc:
            raise StoreError(f"{self.describe()}: {what} failed: {exc}") from exc
        finally:
            if (
                opened_here
                and threading.current_thread() is not threading.main_thread()
                and not connection.in_atomic_block
            ):
                # A thread that only runs jobstatus (asyncio.to_thread, heartbeats)
                # never gets Django's request-end cleanup: don't leave it a connection.
                connection.close()

    @_off_loop
    def write(self, job_id: str, change: Change) -> Written:
        from django.db import transaction

        now = self._clock()
        with self._database("write"), transaction.atomic(using=self.using):

            def update(
                target: str, compute: Callable[[Record | None], Record | None]
            ) -> tuple[Record | None, Record | None]:
                return self._update(target, compute, change, now)

            written = write_through(update, job_id, change)
            if written.applied and self._due_for_purge():
                self._purge_some(now)
        return written

    def _update(
        self,
        job_id: str,
        compute: Callable[[Record | None], Record | None],
        change: Change,
        now: float,
    ) -> tuple[Record | None, Record | None]:
        """One record, locked for the rest of the transaction: ``compute(old)`` stored."""
        from .models import JobStatusRecord

        # Insert a placeholder first, so a missing row can be locked too and two
        # first writers never both see "no row" (on SQLite this takes the write lock).
        self._rows().bulk_create([JobStatusRecord(job_id=job_id)], ignore_conflicts=True)
        row = self._rows().select_for_update().get(job_id=job_id)
        old = loads(row.record) if row.expires_at > now else None
        new = compute(old)
        if new is None:
            return old, None
        parent, name = new.get("parent"), new.get("name")
        row.record = dumps(new)
        row.status = new.get("status") or ""
        row.updated_at = parse_iso(new.get("updated_at")) or now
        row.expires_at = now + change.ttl_for(new)
        row.parent = parent if isinstance(parent, str) else None
        row.name = name if isinstance(name, str) else None
        row.save(update_fields=["record", "status", "updated_at", "expires_at", "parent", "name"])
        return old, new

    def _due_for_purge(self) -> bool:
        with self._writes_lock:
            self._writes += 1
            return self._writes % PURGE_EVERY == 1

    def _purge_some(self, now: float) -> None:
        expired = list(
            self._rows().filter(expires_at__lte=now).values_list("job_id", flat=True)[:PURGE_BATCH]
        )
        if expired:
            self._rows().filter(job_id__in=expired, expires_at__lte=now).delete()

    @_off_loop
    def purge(self) -> int:
        """Delete every expired row now; return how many were removed."""
        with self._database("purge"):
            removed, _ = self._rows().filter(expires_at__lte=self._clock()).delete()
        return int(removed)

    @_off_loop
    def read(self, job_id: str) -> Record | None:
        with self._database("read"):
            found = (
                self._rows()
                .filter(job_id=job_id, expires_at__gt=self._clock())
                .values_list("record", flat=True)
                .first()
            )
        return loads_record(found) if found is not None else None

    @_off_loop
    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        found: dict[str, Record] = {}
        now = self._clock()
        with self._database("read"):
            for start in range(0, len(job_ids), READ_CHUNK):
                chunk = list(job_ids[start : start + READ_CHUNK])
                rows = self._rows().filter(job_id__in=chunk, expires_at__gt=now)
                pairs = rows.values_list("job_id", "record")
                found.update((job_id, loads_record(text)) for job_id, text in pairs)
        return [found.get(job_id) for job_id in job_ids]

    @_off_loop
    def delete(self, job_id: str) -> None:
        with self._database("delete"):
            self._rows().filter(job_id=job_id).delete()

    @_off_loop
    def child_ids(self, parent: str) -> list[str]:
        rows = self._rows().filter(parent=parent, expires_at__gt=self._clock())
        with self._database("list"):
            return list(rows.order_by("job_id").values_list("job_id", flat=True))

    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        return self.find(status=status, limit=limit, before=before)

    @_off_loop
    def find(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        rows = self._rows().filter(expires_at__gt=self._clock())
        if status is not None:
            rows = rows.filter(status=status)
        if before is not None:
            rows = rows.filter(updated_at__lt=before)
        if name is not None:
            rows = rows.filter(name=name)
        if id_prefix is not None:
            rows = rows.filter(job_id__startswith=id_prefix)
        with self._database("list"):
            found = list(
                rows.order_by("-updated_at", "-job_id").values_list("job_id", "record")[:limit]
            )
        return [(job_id, loads_record(text)) for job_id, text in found]

    @_off_loop
    def count_by_status(self) -> dict[str, int]:
        from django.db.models import Count

        counts = dict.fromkeys(STATES, 0)
        rows = self._rows().filter(expires_at__gt=self._clock())
        with self._database("count"):
            for row in rows.values("status").annotate(n=Count("job_id")).order_by():
                if row["status"] in counts:
                    counts[row["status"]] = int(row["n"])
        return counts

    @_off_loop
    def count_stale(self, updated_before: float) -> int:
        rows = self._rows().filter(
            status="working", updated_at__lt=updated_before, expires_at__gt=self._clock()
        )
        with self._database("count"):
            return int(rows.count())
