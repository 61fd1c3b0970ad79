"""``postgresql://`` or ``postgres://``: a row per job, merged in one statement, pushed by NOTIFY.

A write is a single ``INSERT ... ON CONFLICT DO UPDATE`` that merges the change
into the stored record under the row's lock, applies increments in SQL, sets
the status column and expiry, and ``pg_notify``-s the record to the table's
channel; see :mod:`._postgres_sql` for the statement and the record encoding.
Watchers ``LISTEN`` on that channel. Expired rows are ignored by reads and
purged in small batches by writes, so no daemon is needed.

``PostgresStore(client=...)`` wraps a ready psycopg ``Connection`` /
``AsyncConnection`` or a psycopg_pool ``ConnectionPool`` /
``AsyncConnectionPool``; the other side (sync or async) and watchers open
their own connections to the same server.

The store is three parts, so that its calls are written once:
:mod:`._async.postgres` holds the calls, written for asyncio;
:mod:`._sync.postgres` is their sync twin, generated from it by
``scripts/unasync.py``; :mod:`._postgres_base` holds what both sides share
(options, statements, pools, errors). This module combines them.
"""

from __future__ import annotations

from typing import Any

from . import _postgres_sql as q
from ._async.postgres import AsyncNotifySubscription, AsyncPostgresIO
from ._postgres_base import PoolTimeout
from ._sync.postgres import NotifySubscription, PostgresIO
from ._url import take_options
from .base import (
    AsyncPollingSubscription,
    AsyncSubscription,
    PollingSubscription,
    Push,
    Subscription,
)


class PostgresStore(PostgresIO, AsyncPostgresIO):
    """Records in a PostgreSQL table, merged atomically by the server, pushed to watchers.

    Args:
        url: ``postgresql://user:password@host:port/dbname`` (libpq's URL); query
            options ``table``, ``timeout`` and ``notify`` are the store's, others
            go to libpq (``?sslmode=require``).
        client: instead of a URL, a ready psycopg ``Connection``,
            ``AsyncConnection``, or psycopg_pool ``ConnectionPool`` /
            ``AsyncConnectionPool``. It keeps its own settings; a connection
            not in autocommit mode is committed after each call.
        table: the table's name (default ``jobstatus``), created on first use.
        timeout: seconds every call may take: connecting (libpq rounds up to
            whole seconds, at least 2), each statement and lock wait, and
            waiting for a free pooled connection. Default 5. A reply that has
            not come ``timeout`` + 0.5 s after a query (a frozen server) gives
            up and closes that connection.
        notify: send each write to watchers with NOTIFY (default True). Off,
            watchers poll; writes skip NOTIFY's commit-time lock.
        synchronous_commit: wait for each commit to reach disk (default False:
            status records are short-lived, and not waiting makes a busy job's
            writes several times faster; a server crash may lose the last
            fraction of a second of writes). Applies to connections the store opens.
        max_size: connections this store opens per process (and per event loop).
        clock: returns epoch seconds; inject one in tests to expire records.

    Raises:
        ConfigurationError: psycopg is missing, or an option is wrong.

    Example::

        store = PostgresStore.from_url("postgresql://app@db/app?table=job_status")
        store.migrate()  # optional: tables are created on first use
        jobstatus.configure(store=store)
    """

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """A store from ``postgresql://`` (``?table=...&timeout=...&notify=false``)."""
        return cls(take_options(url, options, q.URL_OPTIONS, driver_reads_rest=True), **options)

    def subscribe(self, job_id: str) -> Subscription:
        if not self.supports(Push):
            return PollingSubscription()
        subscription = NotifySubscription(self, job_id)
        subscription.listen()  # now: no write after subscribe() returns is missed
        return subscription

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        if not self.supports(Push):
            return AsyncPollingSubscription()
        return AsyncNotifySubscription(self, job_id)  # it listens when entered

    def purge(self) -> int:
        """Delete every expired row now; return how many were removed.

        Rows go in batches of ``PURGE_ALL_BATCH``, one statement each, so every
        statement stays within ``timeout`` however many rows expired, and
        writers are never held up for long.
        """
        params = {"now": self._clock(), "limit": q.PURGE_ALL_BATCH}
        total = 0
        while True:
            removed: int = self._call(
                "purge", lambda conn: conn.execute(self._statements["purge"], params).rowcount
            )
            total += removed
            if removed < q.PURGE_ALL_BATCH:
                return total

    def drop(self) -> None:
        """Drop the table (for tests and uninstalling)."""
        try:
            with self._lease() as (conn, _):
                conn.execute(self._statements["drop"])
        except (self._pg.Error, OSError, PoolTimeout) as exc:
            raise self._failed("dropping the table", exc) from exc
        self._migrated = False
