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
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, ClassVar, TypeVar

from .._errors import ConfigurationError, StoreError, WriteRefused
from .._record import Change, Record
from . import _postgres_sql as q
from ._url import redact, take_options
from .base import (
    DEFAULT_TIMEOUT,
    AsyncSubscription,
    Clock,
    Listing,
    PerProcess,
    Store,
    Subscription,
    Written,
    require,
)

T = TypeVar("T")

DEFAULT_MAX_SIZE = 10  # connections per process (and per event loop)
RECONNECT_PAUSE = 0.2  # seconds a watcher waits before listening again after an error
# Seconds past `timeout` the client waits for a reply: the server's own
# statement_timeout answers first when it runs; a frozen server does not.
REPLY_GRACE = 0.5


class PostgresStore(Store, Listing):
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

    pushes: ClassVar[bool] = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        table: str = q.DEFAULT_TABLE,
        timeout: float = DEFAULT_TIMEOUT,
        notify: bool = True,
        synchronous_commit: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Clock = time.time,
    ) -> None:
        self._pg: Any = require("psycopg", "postgres")
        self._sql: Any = require("psycopg.sql", "postgres")
        if (url is None) == (client is None):
            raise ConfigurationError("PostgresStore needs a URL or a client (one of them)")
        if url is not None and not isinstance(url, str):
            raise ConfigurationError(f"a PostgreSQL URL must be a str, not {type(url).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ConfigurationError(f"timeout must be a number of seconds; got {timeout!r}")
        if not 0 < timeout < math.inf:
            raise ConfigurationError(f"timeout must be positive and finite; got {timeout!r}")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigurationError(f"max_size must be a positive int; got {max_size!r}")
        self.table = q.check_table(table)
        self.timeout = float(timeout)
        self.notify = bool(notify)
        self.synchronous_commit = bool(synchronous_commit)
        self._max_size = max_size
        self._clock = clock
        self._url = url
        self._given = client
        self._conninfo, self._given_kind = self._conninfo_of(url, client)
        self._statements = self._build_statements()
        self._pools = PerProcess(self._new_pool)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )
        # One call at a time on a given connection: outside autocommit mode, the
        # rollback of a failed call would also undo another call's uncommitted write.
        self._given_lock = threading.Lock()
        self._given_alock = asyncio.Lock()
        self._migrated = False
        self._writes = 0
        self._writes_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """A store from ``postgresql://`` (``?table=...&timeout=...&notify=false``)."""
        return cls(take_options(url, options, q.URL_OPTIONS, driver_reads_rest=True), **options)

    def describe(self) -> str:
        where = redact(self._url) if self._url is not None else type(self._given).__name__
        return f"{where} (table {self.table})"

    # -- connections -----------------------------------------------------------

    def _conninfo_of(self, url: str | None, client: Any) -> tuple[str, str]:
        """The conninfo to open our own connections with, and what kind of client was given."""
        if client is None:
            assert url is not None
            return url, "url"
        module = type(client).__module__
        if module.startswith("psycopg_pool"):
            kwargs = dict(client.kwargs or {})
            kwargs.pop("autocommit", None)
            info = self._pg.conninfo.make_conninfo(client.conninfo, **kwargs)
            return info, "async_pool" if "Async" in type(client).__name__ else "pool"
        if isinstance(client, (self._pg.Connection, self._pg.AsyncConnection)):
            options = {
                option.keyword.decode(): option.val.decode()
                for option in client.pgconn.info
                if option.val is not None and option.keyword.decode() != "options"
            }
            info = self._pg.conninfo.make_conninfo("", **options)
            kind = "async_connection" if isinstance(client, self._pg.AsyncConnection) else "conn"
            return info, kind
        raise ConfigurationError(
            f"PostgresStore cannot use a {type(client).__name__}; give a URL, a psycopg "
            "connection or a psycopg_pool pool"
        )

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.timeout)),
            "options": q.session_options(self.timeout, self.synchronous_commit),
            "tcp_user_timeout": max(1, round(self.timeout * 1000)),
        }

    def _reply_limit(self) -> float:
        return self.timeout + REPLY_GRACE

    def _connect(self) -> Any:
        conn = self._pg.Connection.connect(self._conninfo, **self._connect_kwargs())
        return _pooled(_bounded(self._pg, conn, self._reply_limit()))

    async def _aconnect(self) -> Any:
        conn = await self._pg.AsyncConnection.connect(self._conninfo, **self._connect_kwargs())
        return _pooled(_abounded(self._pg, conn, self._reply_limit()))

    def _new_pool(self) -> _Pool:
        return _Pool(self._connect, self._max_size, self.timeout)

    @contextmanager
    def _lease(self) -> Iterator[tuple[Any, bool]]:
        """A connection for one call, and whether it was used before (it may have gone stale)."""
        if self._given_kind == "pool":
            with self._given.connection(timeout=self.timeout) as conn:
                yield conn, True
        elif self._given_kind == "conn":
            conn = self._given
            with self._given_lock:
                try:
                    yield conn, True
                except BaseException:
                    if not conn.autocommit and not conn.closed:
                        conn.rollback()
                    raise
                if not conn.autocommit:
                    conn.commit()
        else:
            pool = self._pools.get()
            assert isinstance(pool, _Pool)
            with pool.lease() as lease:
                yield lease

    @asynccontextmanager
    async def _alease(self) -> AsyncIterator[tuple[Any, bool]]:
        if self._given_kind == "async_pool":
            async with self._given.connection(timeout=self.timeout) as conn:
                yield conn, True
        elif self._given_kind == "async_connection":
            conn = self._given
            async with self._given_alock:
                try:
                    yield conn, True
                except BaseException:
                    if not conn.autocommit and not conn.closed:
                        await conn.rollback()
                    raise
                if not conn.autocommit:
                    await conn.commit()
        else:
            pool = await self._loop_pool()
            async with pool.lease() as lease:
                yield lease

    async def _loop_pool(self) -> _AsyncPool:
        # An asyncio connection belongs to the loop that opened it: a pool per loop.
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            entry = _LoopPool(_AsyncPool(self._aconnect, self._max_size, self.timeout))
            await entry.start()
            self._loops[loop] = entry
        return entry.pool

    def _failed(self, what: str, exc: BaseException) -> StoreError:
        # The server refuses such a write however often it is sent: a value out
        # of range (a float sum that overflows) or beyond a limit (jsonb's size).
        refused = what == "write" and isinstance(
            exc, (self._pg.DataError, self._pg.errors.ProgramLimitExceeded)
        )
        error = WriteRefused if refused else StoreError
        return error(f"{self.describe()}: {what} failed: {exc}")

    def _call(self, what: str, run: Callable[[Any], T]) -> T:
        """Run ``run(connection)``, once more on a new connection if a pooled one had gone stale.

        A stale connection (the server restarted since it was last used) fails
        before the server runs anything, so running the call again is safe.
        """
        pg = self._pg
        self._migrate_once()
        for attempt in (1, 2):
            try:
                with self._lease() as (conn, reused):
                    try:
                        return run(conn)
                    except pg.OperationalError as exc:
                        if attempt == 1 and reused and conn.closed and not _no_reply(exc):
                            continue
                        raise
            except (pg.Error, OSError, _PoolTimeout) as exc:
                raise self._failed(what, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(self, what: str, run: Callable[[Any], Awaitable[T]]) -> T:
        """Async twin of :meth:`_call`."""
        pg = self._pg
        await self._amigrate_once()
        for attempt in (1, 2):
            try:
                async with self._alease() as (conn, reused):
                    try:
                        return await run(conn)
                    except pg.OperationalError as exc:
                        if attempt == 1 and reused and conn.closed and not _no_reply(exc):
                            continue
                        raise
            except (pg.Error, OSError, _PoolTimeout) as exc:
                raise self._failed(what, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- schema ----------------------------------------------------------------

    def _build_statements(self) -> dict[str, Any]:
        sql = self._sql
        names = {key: sql.Identifier(name) for key, name in q.index_names(self.table).items()}
        table = sql.Identifier(self.table)

        def build(text: str) -> Any:
            return sql.SQL(text).format(t=table, **names)

        return {
            "schema": [build(text) for text in q.SCHEMA],
            "write": build(q.WRITE_AND_NOTIFY if self.notify else q.WRITE),
            "read": build(q.READ),
            "read_many": build(q.READ_MANY),
            "delete": build(q.DELETE),
            "purge": build(q.PURGE),
            "list_all": build(q.LIST_ALL),
            "list_status": build(q.LIST_STATUS),
            "listen": sql.SQL("LISTEN {}").format(sql.Identifier(self.table)),
        }

    def _lock_key(self) -> str:
        return f"jobstatus migrate {self.table}"

    def migrate(self) -> None:
        """Create the table and its indexes if missing (safe to run from many processes at once).

        Raises:
            StoreError: the server refused (for example, no right to create tables).
        """
        self._migrated = False
        self._migrate_once()

    def _migrate_once(self) -> None:
        if self._migrated:
            return
        try:
            with self._lease() as (conn, _), conn.transaction():
                self._run_schema(conn)
        except (self._pg.Error, OSError, _PoolTimeout) as exc:
            raise self._failed("creating the table", exc) from exc
        self._migrated = True

    def _run_schema(self, conn: Any) -> None:
        # Concurrent CREATE ... IF NOT EXISTS can still collide; one at a time.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._lock_key(),))
        for statement in self._statements["schema"]:
            conn.execute(statement)

    async def amigrate(self) -> None:
        """Async twin of :meth:`migrate`."""
        self._migrated = False
        await self._amigrate_once()

    async def _amigrate_once(self) -> None:
        if self._migrated:
            return
        try:
            async with self._alease() as (conn, _), conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (self._lock_key(),)
                )
                for statement in self._statements["schema"]:
                    await conn.execute(statement)
        except (self._pg.Error, OSError, _PoolTimeout) as exc:
            raise self._failed("creating the table", exc) from exc
        self._migrated = True

    def drop(self) -> None:
        """Drop the table (for tests and uninstalling)."""
        sql = self._sql
        statement = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table))
        try:
            with self._lease() as (conn, _):
                conn.execute(statement)
        except (self._pg.Error, OSError, _PoolTimeout) as exc:
            raise self._failed("dropping the table", exc) from exc
        self._migrated = False

    # -- the store -------------------------------------------------------------

    def _write_params(self, job_id: str, change: Change) -> dict[str, Any]:
        return q.write_params(job_id, change, self._clock(), self.table)

    def _due_for_purge(self) -> bool:
        with self._writes_lock:
            self._writes += 1
            return self._writes % q.PURGE_EVERY == 0

    def write(self, job_id: str, change: Change) -> Written | None:
        params = self._write_params(job_id, change)
        purge = self._due_for_purge()

        def run(conn: Any) -> Written:
            applied, created = conn.execute(self._statements["write"], params).fetchone()[:2]
            if purge:
                conn.execute(
                    self._statements["purge"], {"now": params["now"], "limit": q.PURGE_BATCH}
                )
            return q.written(applied, created)

        return self._call("write", run)

    async def awrite(self, job_id: str, change: Change) -> Written | None:
        if self._given_kind == "conn":
            return await super().awrite(job_id, change)
        params = self._write_params(job_id, change)
        purge = self._due_for_purge()

        async def run(conn: Any) -> Written:
            cursor = await conn.execute(self._statements["write"], params)
            applied, created = (await cursor.fetchone())[:2]
            if purge:
                await conn.execute(
                    self._statements["purge"], {"now": params["now"], "limit": q.PURGE_BATCH}
                )
            return q.written(applied, created)

        return await self._acall("write", run)

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

    def read(self, job_id: str) -> Record | None:
        now = self._clock()
        row = self._call(
            "read", lambda conn: conn.execute(self._statements["read"], (job_id, now)).fetchone()
        )
        return q.decode_record(row[0]) if row else None

    async def aread(self, job_id: str) -> Record | None:
        if self._given_kind == "conn":
            return await super().aread(job_id)
        now = self._clock()

        async def run(conn: Any) -> Any:
            return await (await conn.execute(self._statements["read"], (job_id, now))).fetchone()

        row = await self._acall("read", run)
        return q.decode_record(row[0]) if row else None

    def _chunks(self, job_ids: Sequence[str]) -> list[list[str]]:
        ids = list(dict.fromkeys(job_ids))
        return [ids[start : start + q.READ_CHUNK] for start in range(0, len(ids), q.READ_CHUNK)]

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        if not job_ids:
            return []
        now = self._clock()

        def run(conn: Any) -> dict[str, Record]:
            found: dict[str, Record] = {}
            for chunk in self._chunks(job_ids):
                rows = conn.execute(self._statements["read_many"], (chunk, now)).fetchall()
                found.update((job_id, q.decode_record(record)) for job_id, record in rows)
            return found

        found = self._call("read_many", run)
        return [found.get(job_id) for job_id in job_ids]

    async def aread_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        if self._given_kind == "conn":
            return await super().aread_many(job_ids)
        if not job_ids:
            return []
        now = self._clock()

        async def run(conn: Any) -> dict[str, Record]:
            found: dict[str, Record] = {}
            for chunk in self._chunks(job_ids):
                cursor = await conn.execute(self._statements["read_many"], (chunk, now))
                rows = await cursor.fetchall()
                found.update((job_id, q.decode_record(record)) for job_id, record in rows)
            return found

        found = await self._acall("read_many", run)
        return [found.get(job_id) for job_id in job_ids]

    def delete(self, job_id: str) -> None:
        self._call("delete", lambda conn: conn.execute(self._statements["delete"], (job_id,)))

    async def adelete(self, job_id: str) -> None:
        if self._given_kind == "conn":
            return await super().adelete(job_id)

        async def run(conn: Any) -> None:
            await conn.execute(self._statements["delete"], (job_id,))

        await self._acall("delete", run)

    def _listing(
        self, status: str | None, limit: int, before: float | None
    ) -> tuple[Any, tuple[Any, ...]]:
        upper = math.inf if before is None else before
        if status is None:
            return self._statements["list_all"], (self._clock(), upper, limit)
        return self._statements["list_status"], (status, self._clock(), upper, limit)

    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        statement, params = self._listing(status, limit, before)
        rows = self._call("list_recent", lambda conn: conn.execute(statement, params).fetchall())
        return [(job_id, q.decode_record(record)) for job_id, record in rows]

    async def alist_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        if self._given_kind == "conn":
            return await super().alist_recent(status, limit, before)
        statement, params = self._listing(status, limit, before)

        async def run(conn: Any) -> Any:
            return await (await conn.execute(statement, params)).fetchall()

        rows = await self._acall("list_recent", run)
        return [(job_id, q.decode_record(record)) for job_id, record in rows]

    # -- push ------------------------------------------------------------------

    def subscribe(self, job_id: str) -> Subscription:
        if not self.notify:
            return super().subscribe(job_id)
        subscription = _NotifySubscription(self, job_id)
        subscription.listen()
        return subscription

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        if not self.notify:
            return super().asubscribe(job_id)
        return _AsyncNotifySubscription(self, job_id)

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        if self._given_kind not in ("pool", "conn"):
            pool = self._pools.get()
            assert isinstance(pool, _Pool)
            pool.close()
        self._pools.reset()

    async def aclose(self) -> None:
        entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.pool.aclose()
        await asyncio.to_thread(self.close)


def _bounded(pg: Any, conn: Any, limit: float) -> Any:
    """Make ``conn`` give up on a reply after ``limit`` seconds, and close itself.

    psycopg waits for a reply without end, and ``statement_timeout`` needs a
    server that runs: a frozen server (SIGSTOP, a stalled VM) would hold a call
    forever. Waits that name their own timeout (``notifies``) keep it. A psycopg
    without timed waits (no ``errors._WaitTimeout``) leaves connections as they are.
    """
    expired = getattr(pg.errors, "_WaitTimeout", None)
    if expired is None:
        return conn
    wait = conn.wait

    def bounded_wait(gen: Any, interval: Any = None, timeout: float | None = None) -> Any:
        if timeout is not None:  # the caller's own bound, and its own handling
            return wait(gen, **_wait_options(interval, timeout))
        try:
            return wait(gen, **_wait_options(interval, limit))
        except expired as exc:
            conn.close()  # mid-reply: the connection cannot be used again
            raise _reply_timeout(pg, limit) from exc

    conn.wait = bounded_wait
    return conn


def _abounded(pg: Any, conn: Any, limit: float) -> Any:
    """Async twin of :func:`_bounded`."""
    expired = getattr(pg.errors, "_WaitTimeout", None)
    if expired is None:
        return conn
    wait = conn.wait

    async def bounded_wait(gen: Any, interval: Any = None, timeout: float | None = None) -> Any:
        if timeout is not None:  # the caller's own bound, and its own handling
            return await wait(gen, **_wait_options(interval, timeout))
        try:
            return await wait(gen, **_wait_options(interval, limit))
        except expired as exc:
            await conn.close()
            raise _reply_timeout(pg, limit) from exc

    conn.wait = bounded_wait
    return conn


def _wait_options(interval: Any, timeout: float) -> dict[str, Any]:
    return {"timeout": timeout} if interval is None else {"interval": interval, "timeout": timeout}


def _reply_timeout(pg: Any, limit: float) -> Exception:
    error: Exception = pg.OperationalError(f"no reply from the server within {limit:g} s")
    error.jobstatus_no_reply = True  # type: ignore[attr-defined]
    return error


def _no_reply(exc: BaseException) -> bool:
    """True when the server may have run the call without answering: never run it again."""
    return getattr(exc, "jobstatus_no_reply", False) is True


def _pooled(conn: Any) -> Any:
    # psycopg_pool's mark for a pooled connection: a store dropped without
    # close() (common in scripts and tests) then closes its connections when
    # collected without a ResourceWarning, as psycopg_pool's do.
    conn._pool = None
    return conn


class _PoolTimeout(Exception):
    """No pooled connection became free in time."""


class _Pool:
    """A small LIFO pool of autocommit connections: opened on demand, broken ones dropped.

    No background threads and no reconnect schedule: after a server restart the
    next call simply connects again, so a store recovers as soon as the server does.
    """

    def __init__(self, connect: Callable[[], Any], max_size: int, timeout: float) -> None:
        self._connect = connect
        self._timeout = timeout
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_size)
        self._max_size = max_size

    @contextmanager
    def lease(self) -> Iterator[tuple[Any, bool]]:
        if not self._slots.acquire(timeout=self._timeout):
            raise _PoolTimeout(
                f"all {self._max_size} connections stayed busy for {self._timeout:g} s"
            )
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = self._connect()
            try:
                yield conn, reused
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def _give_back(self, conn: Any) -> None:
        if conn.closed or conn.info.transaction_status != 0:  # 0: idle, outside a transaction
            with suppress(Exception):
                conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                conn.close()


class _AsyncPool:
    """Async twin of :class:`_Pool`, for one event loop."""

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], max_size: int, timeout: float
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._idle: list[Any] = []
        self._slots = asyncio.BoundedSemaphore(max_size)
        self._max_size = max_size

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[tuple[Any, bool]]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout)
        except asyncio.TimeoutError:
            raise _PoolTimeout(
                f"all {self._max_size} connections stayed busy for {self._timeout:g} s"
            ) from None
        try:
            conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                yield conn, reused
            finally:
                await self._give_back(conn)
        finally:
            self._slots.release()

    async def _give_back(self, conn: Any) -> None:
        if conn.closed or conn.info.transaction_status != 0:
            with suppress(Exception):
                await conn.close()
            return
        self._idle.append(conn)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                await conn.close()


class _LoopPool:
    """One event loop's pool, closed when the loop shuts down.

    ``asyncio.run`` closes every open async generator before closing its loop,
    so a generator parked at its ``yield`` closes the pool's connections while
    the loop still runs.
    """

    def __init__(self, pool: _AsyncPool) -> None:
        self.pool = pool
        self._guard = self._guarded()

    async def _guarded(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.pool.aclose()

    async def start(self) -> None:
        await self._guard.__anext__()


def _job_records(notices: list[str], job_id: str) -> tuple[list[Record], bool]:
    """The records pushed for ``job_id``, and whether one was too large to push."""
    records, too_large = [], False
    for payload in notices:
        pushed_id, record = q.decode_notify(payload)
        if pushed_id != job_id:
            continue
        if record is None:
            too_large = True
        else:
            records.append(record)
    return records, too_large


class _NotifySubscription(Subscription):
    """LISTEN on the table's channel; keeps the notifications about one job, in commit order."""

    def __init__(self, store: PostgresStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._conn: Any = None

    def listen(self) -> None:
        """Open a dedicated connection and LISTEN, so no later write is missed."""
        store = self._store
        try:
            conn = store._connect()
            conn.execute(store._statements["listen"])
        except (store._pg.Error, OSError) as exc:
            raise store._failed("subscribe", exc) from exc
        self._conn = conn

    def wait(self, timeout: float) -> list[Record] | None:
        store = self._store
        deadline = time.monotonic() + timeout
        try:
            if self._conn is None:
                self.listen()
                return None  # notifications may have been missed while away: read again
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                notices = [n.payload for n in self._conn.notifies(timeout=left, stop_after=1)]
                notices += [n.payload for n in self._conn.notifies(timeout=0)]
                records, too_large = _job_records(notices, self._job_id)
                if too_large:
                    return None
                if records:
                    return records
        except (StoreError, store._pg.Error, OSError):
            self._drop()
            time.sleep(min(RECONNECT_PAUSE, max(deadline - time.monotonic(), 0.0)))
            return None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        self._drop()


class _AsyncNotifySubscription(AsyncSubscription):
    """Async twin of :class:`_NotifySubscription`; listens on entering."""

    def __init__(self, store: PostgresStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._conn: Any = None

    async def __aenter__(self) -> AsyncSubscription:
        await self.listen()
        return self

    async def listen(self) -> None:
        """Open a dedicated connection and LISTEN."""
        store = self._store
        try:
            conn = await store._aconnect()
            await conn.execute(store._statements["listen"])
        except (store._pg.Error, OSError) as exc:
            raise store._failed("subscribe", exc) from exc
        self._conn = conn

    async def wait(self, timeout: float) -> list[Record] | None:
        store = self._store
        deadline = time.monotonic() + timeout
        try:
            if self._conn is None:
                await self.listen()
                return None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                notices = [n.payload async for n in self._conn.notifies(timeout=left, stop_after=1)]
                notices += [n.payload async for n in self._conn.notifies(timeout=0)]
                records, too_large = _job_records(notices, self._job_id)
                if too_large:
                    return None
                if records:
                    return records
        except (StoreError, store._pg.Error, OSError):
            await self._drop()
            await asyncio.sleep(min(RECONNECT_PAUSE, max(deadline - time.monotonic(), 0.0)))
            return None

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        await self._drop()
