"""``postgresql://`` or ``postgres://``: a row per job, written by one function call, NOTIFY-ed.

A write is a single ``SELECT * FROM <table>_write(...)``: a PL/pgSQL function
(installed by :meth:`PostgresStore.migrate`) that applies the whole change
under the row's lock (guard, removals, sets, increments in SQL, history, the
status column and expiry), rolls it up through the job's groups (locking each
ancestor after its child), keeps the per-status counts and ``pg_notify``-s
each record it wrote to the table's channel; see :mod:`._postgres_sql` for the
function, the locks, the counts and the record encoding. Watchers ``LISTEN``
on that channel; cancel requests go to ``<table>_cancels``, where one
:class:`CancelListener` per process hears them. Expired rows are ignored by
reads and purged in small batches by writes, so no daemon is needed.

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

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .._record import Record
from . import _postgres_sql as q
from ._async.postgres import AsyncNotifySubscription, AsyncPostgresIO
from ._postgres_base import RECONNECT_PAUSE, PoolTimeout
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

    def listen_for_cancels(self, deliver: Callable[[str, Record], None]) -> Callable[[], None]:
        """LISTEN for announced cancels on a connection of its own, in a daemon thread.

        Returns once listening (or after ``timeout`` if the server cannot be
        reached: the thread keeps trying), so a request announced after a job
        started reaches it.
        """
        listener = CancelListener(self, deliver)
        listener.start()
        return listener.stop

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
                "purge", lambda conn: conn.execute(self._statements["purge"], params).fetchone()[0]
            )
            total += removed
            if removed < q.PURGE_ALL_BATCH:
                return total

    def drop(self) -> None:
        """Drop the table, its counts and its functions (for tests and uninstalling)."""
        try:
            with self._lease() as (conn, _):
                for statement in self._statements["drop"]:
                    conn.execute(statement)
        except (self._pg.Error, OSError, PoolTimeout) as exc:
            raise self._failed("dropping the table", exc) from exc
        self._migrated = False


logger = logging.getLogger("jobstatus")
LISTEN_TICK = 0.2  # seconds between checks that the listener was stopped


class CancelListener:
    """A daemon thread that LISTENs on the store's cancel channel and calls ``deliver``.

    A dropped connection is opened again after ``RECONNECT_PAUSE``; a request
    announced meanwhile reaches its job by the reply to its next write.
    """

    def __init__(self, store: PostgresStore, deliver: Callable[[str, Record], None]) -> None:
        self._store = store
        self._deliver = deliver
        self._stopped = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"jobstatus-cancels-{store.table}", daemon=True
        )

    def start(self) -> None:
        """Start the thread; return once it listens, or after the store's timeout."""
        self._thread.start()
        self._listening.wait(self._store.timeout)

    def stop(self) -> None:
        """Stop listening (the thread ends within LISTEN_TICK seconds)."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(LISTEN_TICK * 5)

    def _run(self) -> None:
        store = self._store
        while not self._stopped.is_set():
            conn: Any = None
            try:
                conn = store._connect()
                conn.execute(store._statements["listen_cancels"])
                self._listening.set()
                while not self._stopped.is_set():
                    for notice in conn.notifies(timeout=LISTEN_TICK):
                        self._handle(notice.payload)
            except (store._pg.Error, OSError) as exc:
                logger.debug("the cancel listener of %s lost its connection: %s", store, exc)
                self._stopped.wait(RECONNECT_PAUSE)
            finally:
                if conn is not None:
                    with suppress(Exception):  # a broken connection closes as it can
                        conn.close()

    def _handle(self, payload: str) -> None:
        announced = q.decode_cancel(payload)
        if announced is None:
            return
        try:
            self._deliver(*announced)
        except Exception:  # noqa: BLE001 - one bad delivery must not end the listener
            logger.exception("delivering a cancel request failed")
