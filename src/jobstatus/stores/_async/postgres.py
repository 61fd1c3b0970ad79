"""The PostgreSQL store's calls to the server, each written once.

The async calls in :mod:`jobstatus.stores._async.postgres` are the source; the
sync ones in :mod:`jobstatus.stores._sync.postgres` are generated from them by
``scripts/unasync.py``. :class:`jobstatus.stores.postgres.PostgresStore`
combines both with :class:`jobstatus.stores._postgres_base.PostgresBase`
(options, statements, pools, errors).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from ..._errors import StoreError
from ..._record import Change, Record
from .. import _postgres_sql as q
from .._postgres_base import (
    RECONNECT_PAUSE,
    AsyncLeases,
    PoolTimeout,
    PostgresBase,
    job_records,
    no_reply,
    pooled,
    reply_timeout,
    wait_options,
)
from ..base import AsyncSubscription, Written

T = TypeVar("T")


class AsyncPostgresIO(PostgresBase):
    """The calls of :class:`~jobstatus.stores.postgres.PostgresStore`: a statement or two each."""

    # -- connections -----------------------------------------------------------

    async def _aconnect(self) -> Any:
        conn = await self._pg.AsyncConnection.connect(self._conninfo, **self._connect_kwargs())
        return pooled(_abounded(self._pg, conn, self._reply_limit()))

    def _new_apool(self) -> AsyncPool:
        return AsyncPool(self._aconnect, self._max_size, self.timeout)

    @asynccontextmanager
    async def _alease(self) -> AsyncIterator[tuple[Any, bool]]:
        """A connection for one call, and whether it was used before (it may have gone stale)."""
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

    async def _acall(self, what: str, run: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``run(connection)``, once more on a new connection if a pooled one had gone stale.

        A stale connection (the server restarted since it was last used) fails
        before the server runs anything, so running the call again is safe.
        """
        pg = self._pg
        await self._amigrate_once()
        for attempt in (1, 2):
            try:
                async with self._alease() as (conn, reused):
                    try:
                        return await run(conn)
                    except pg.OperationalError as exc:
                        if attempt == 1 and reused and conn.closed and not no_reply(exc):
                            continue
                        raise
            except (pg.Error, OSError, PoolTimeout) as exc:
                raise self._failed(what, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- schema ----------------------------------------------------------------

    async def amigrate(self) -> None:
        """Create the table, its indexes, counts and write function, or bring a table of
        an earlier schema up to date (safe to run from many processes at once).

        Raises:
            StoreError: the server refused (for example, no right to create tables).
        """
        self._migrated = False
        await self._amigrate_once()

    async def _amigrate_once(self) -> None:
        if self._migrated:
            return
        try:
            async with self._alease() as (conn, _), conn.transaction():
                # Concurrent CREATE ... IF NOT EXISTS can still collide; one at a time.
                lock = "SELECT pg_advisory_xact_lock(hashtext(%s))"
                await conn.execute(lock, (self._lock_key(),))
                cursor = await conn.execute(self._statements["version"], (self._regclass(),))
                (version,) = await cursor.fetchone()
                if version != q.SCHEMA_MARKER:
                    for statement in self._statements["migrate"]:
                        await conn.execute(statement)
        except (self._pg.Error, OSError, PoolTimeout) as exc:
            raise self._failed("creating the table", exc) from exc
        self._migrated = True

    # -- the store -------------------------------------------------------------

    async def awrite(self, job_id: str, change: Change) -> Written:
        params = self._write_params(job_id, change)
        purge = self._due_for_purge()

        async def run(conn: Any) -> Written:
            cursor = await conn.execute(self._statements["write"], params)
            row = await cursor.fetchone()
            if purge:
                await conn.execute(
                    self._statements["purge"], {"now": params["now"], "limit": q.PURGE_BATCH}
                )
            return q.written(row)

        return await self._acall("write", run)

    async def aread(self, job_id: str) -> Record | None:
        now = self._clock()

        async def run(conn: Any) -> Any:
            cursor = await conn.execute(self._statements["read"], (job_id, now))
            return await cursor.fetchone()

        row = await self._acall("read", run)
        return q.decode_record(row[0]) if row else None

    async def aread_many(self, job_ids: Sequence[str]) -> list[Record | None]:
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

    async def adelete(self, job_id: str) -> None:
        async def run(conn: Any) -> None:
            await conn.execute(self._statements["delete"], (job_id,))

        await self._acall("delete", run)

    async def alist_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        return await self.afind(status=status, limit=limit, before=before)

    async def afind(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        statement, params = self._search(status, limit, before, name, id_prefix)

        async def run(conn: Any) -> Any:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall()

        rows = await self._acall("find", run)
        return [(job_id, q.decode_record(record)) for job_id, record in rows]

    async def acount_by_status(self) -> dict[str, int]:
        now = self._clock()

        async def run(conn: Any) -> Any:
            cursor = await conn.execute(self._statements["count_by_status"], (now,))
            return await cursor.fetchall()

        return q.counts_of(await self._acall("count_by_status", run))

    async def acount_stale(self, updated_before: float) -> int:
        now = self._clock()

        async def run(conn: Any) -> int:
            cursor = await conn.execute(self._statements["count_stale"], (updated_before, now))
            (count,) = await cursor.fetchone()
            return int(count)

        return await self._acall("count_stale", run)

    async def achild_ids(self, parent: str) -> list[str]:
        now = self._clock()

        async def run(conn: Any) -> Any:
            cursor = await conn.execute(self._statements["child_ids"], (parent, now))
            return await cursor.fetchall()

        return [job_id for (job_id,) in await self._acall("child_ids", run)]

    async def aannounce_cancel(self, job_id: str, request: Record) -> None:
        # At most 512 + 1,000 characters of id and reason: within NOTIFY's 8,000 bytes.
        payload = q.cancel_payload(job_id, request)
        channel = q.cancel_channel(self.table)

        async def run(conn: Any) -> None:
            await conn.execute(self._statements["announce"], (channel, payload))

        await self._acall("announce_cancel", run)


def _abounded(pg: Any, conn: Any, limit: float) -> Any:
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

    async def bounded_wait(gen: Any, interval: Any = None, timeout: float | None = None) -> Any:
        if timeout is not None:  # the caller's own bound, and its own handling
            return await wait(gen, **wait_options(interval, timeout))
        try:
            return await wait(gen, **wait_options(interval, limit))
        except expired as exc:
            await conn.close()  # mid-reply: the connection cannot be used again
            raise reply_timeout(pg, limit) from exc

    conn.wait = bounded_wait
    return conn


class AsyncPool:
    """A small LIFO pool of autocommit connections: opened on demand, broken ones dropped.

    No background work and no reconnect schedule: after a server restart the
    next call simply connects again, so a store recovers as soon as the server does.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        max_size: int,
        timeout: float,
    ) -> None:
        self._connect = connect
        self._idle: list[Any] = []
        self._lock = threading.Lock()  # the threads of a sync pool share the idle list
        self._leases = AsyncLeases(max_size, timeout)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[tuple[Any, bool]]:
        """A connection, and whether it was used before; given back afterwards.

        Raises:
            PoolTimeout: every connection stayed busy for the timeout.
        """
        await self._leases.take()
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                yield conn, reused
            finally:
                await self._give_back(conn)
        finally:
            self._leases.give_back()

    async def _give_back(self, conn: Any) -> None:
        if conn.closed or conn.info.transaction_status != 0:  # 0: idle, outside a transaction
            with suppress(Exception):
                await conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    async def aclose(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                await conn.close()


class AsyncNotifySubscription(AsyncSubscription):
    """LISTEN on the table's channel; keeps the notifications about one job, in commit order.

    It listens when entered (or at its first wait), on a connection of its own,
    so no write after that is missed.
    """

    def __init__(self, store: AsyncPostgresIO, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._conn: Any = None

    async def listen(self) -> None:
        """Open a dedicated connection and LISTEN, unless listening already."""
        if self._conn is not None:
            return
        store = self._store
        try:
            self._conn = await store._aconnect()  # kept at once: aclose() closes it
            await self._conn.execute(store._statements["listen"])
        except (store._pg.Error, OSError) as exc:
            await self._drop()
            raise store._failed("subscribe", exc) from exc

    async def wait(self, timeout: float) -> list[Record] | None:
        store = self._store
        deadline = time.monotonic() + timeout
        try:
            if self._conn is None:
                await self.listen()
                return None  # notifications may have been missed while away: read again
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                notices = [n.payload async for n in self._conn.notifies(timeout=left, stop_after=1)]
                notices += [n.payload async for n in self._conn.notifies(timeout=0)]
                records, too_large = job_records(notices, self._job_id)
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
