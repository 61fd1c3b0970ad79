"""What the PostgreSQL store's sync and async sides share: options, statements, pools, errors.

:class:`PostgresBase` makes no call to the server. The calls are written once,
for asyncio, in :mod:`._async.postgres`; their sync twin :mod:`._sync.postgres`
is generated from it; :class:`jobstatus.stores.postgres.PostgresStore` combines
the two. What differs between the sides is here, written for each: a sync pool
serves a process (rebuilt after a fork), an async one the event loop it was made
in; waiting for a free connection.
"""

from __future__ import annotations

import abc
import asyncio
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._errors import ConfigurationError, StoreError, WriteRefused
from .._record import Change, Record
from . import _postgres_sql as q
from ._options import check_timeout
from ._url import redact
from .base import (
    DEFAULT_TIMEOUT,
    CancelPush,
    Capability,
    Clock,
    Listing,
    Migration,
    PerProcess,
    Purge,
    Push,
    Store,
    require,
)

DEFAULT_MAX_SIZE = 10  # connections per process (and per event loop)
RECONNECT_PAUSE = 0.2  # seconds a watcher waits before listening again after an error
# Seconds past `timeout` the client waits for a reply: the server's own
# statement_timeout answers first when it runs; a frozen server does not.
REPLY_GRACE = 0.5
# What only NOTIFY makes possible: a store built with notify=False does not offer it.
NEEDS_NOTIFY: tuple[type[Capability], ...] = (Push, CancelPush)


class PostgresBase(Listing, Push, CancelPush, Migration, Purge, Store):
    """The PostgreSQL store without its calls (see :class:`.postgres.PostgresStore`)."""

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
        self.timeout = check_timeout(timeout)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigurationError(f"max_size must be a positive int; got {max_size!r}")
        self.table = q.check_table(table)
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

    def supports(self, capability: type[Capability]) -> bool:
        if capability in NEEDS_NOTIFY and not self.notify:
            return False
        return super().supports(capability)

    def describe(self) -> str:
        where = redact(self._url) if self._url is not None else type(self._given).__name__
        return f"{where} (table {self.table})"

    # -- connections -----------------------------------------------------------

    def _conninfo_of(self, url: str | None, client: Any) -> tuple[str, str]:
        """The conninfo to open our own connections with, and what kind of client was given.

        The kinds: ``url``, ``pool``, ``async_pool``, ``connection``, ``async_connection``.
        """
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
            is_async = isinstance(client, self._pg.AsyncConnection)
            return info, "async_connection" if is_async else "connection"
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

    @abc.abstractmethod
    def _new_pool(self) -> Any:
        """A pool of sync connections (the sync side builds it)."""

    @abc.abstractmethod
    def _new_apool(self) -> Any:
        """A pool of async connections for the running event loop (the async side builds it)."""

    def _process_pool(self) -> Any:
        """This process's pool of the store's own sync connections."""
        return self._pools.get()

    async def _loop_pool(self) -> Any:
        """This event loop's pool of the store's own async connections.

        An asyncio connection belongs to the loop that opened it: a pool per loop.
        """
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            entry = _LoopPool(self._new_apool())
            await entry.start()
            self._loops[loop] = entry
        return entry.pool

    def close(self) -> None:
        if self._given_kind not in ("pool", "connection"):
            self._process_pool().close()
        self._pools.forget()

    async def aclose(self) -> None:
        entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.pool.aclose()
        await asyncio.to_thread(self.close)

    def _failed(self, what: str, exc: BaseException) -> StoreError:
        # The server refuses such a write however often it is sent: a value out
        # of range (a float sum that overflows) or beyond a limit (jsonb's size).
        refused = what == "write" and isinstance(
            exc, (self._pg.DataError, self._pg.errors.ProgramLimitExceeded)
        )
        error = WriteRefused if refused else StoreError
        return error(f"{self.describe()}: {what} failed: {exc}")

    # -- what the calls send ---------------------------------------------------

    def _build_statements(self) -> dict[str, Any]:
        sql = self._sql
        names = {key: sql.Identifier(name) for key, name in q.object_names(self.table).items()}
        table = sql.Identifier(self.table)

        def build(text: str) -> Any:
            return sql.SQL(text).format(t=table, **names)

        return {
            "version": sql.SQL(q.VERSION),
            "migrate": [build(text) for text in (*q.MIGRATE, q.MARK)],
            "write": build(q.WRITE),
            "read": build(q.READ),
            "read_many": build(q.READ_MANY),
            "delete": build(q.DELETE),
            "purge": build(q.PURGE),
            "list_all": build(q.LIST_ALL),
            "list_status": build(q.LIST_STATUS),
            "count_by_status": build(q.COUNT_BY_STATUS),
            "count_stale": build(q.COUNT_STALE),
            "child_ids": build(q.CHILD_IDS),
            "announce": sql.SQL(q.ANNOUNCE),
            "listen": sql.SQL("LISTEN {}").format(sql.Identifier(self.table)),
            "listen_cancels": sql.SQL("LISTEN {}").format(
                sql.Identifier(q.cancel_channel(self.table))
            ),
            "drop": [build(text) for text in q.DROP],
        }

    def _find_statement(self, status: str | None, name: str | None, id_prefix: str | None) -> Any:
        text = q.find_query(status=status, name=name, id_prefix=id_prefix)
        return self._sql.SQL(text).format(t=self._sql.Identifier(self.table))

    def _regclass(self) -> str:
        """The table's name as ``to_regclass`` reads it (quoted: it keeps its case)."""
        return f'"{self.table}"'

    def _lock_key(self) -> str:
        return f"jobstatus migrate {self.table}"

    def _write_params(self, job_id: str, change: Change) -> dict[str, Any]:
        channel = self.table if self.notify else None
        return q.write_params(job_id, change, self._clock(), channel)

    def _due_for_purge(self) -> bool:
        with self._writes_lock:
            self._writes += 1
            return self._writes % q.PURGE_EVERY == 0

    def _chunks(self, job_ids: Sequence[str]) -> list[list[str]]:
        ids = list(dict.fromkeys(job_ids))
        return [ids[start : start + q.READ_CHUNK] for start in range(0, len(ids), q.READ_CHUNK)]

    def _listing(
        self, status: str | None, limit: int, before: float | None
    ) -> tuple[Any, tuple[Any, ...]]:
        upper = math.inf if before is None else before
        if status is None:
            return self._statements["list_all"], (self._clock(), upper, limit)
        return self._statements["list_status"], (status, self._clock(), upper, limit)

    def _search(
        self,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None,
        id_prefix: str | None,
    ) -> tuple[Any, Sequence[Any]]:
        """The statement and parameters of ``find``."""
        if name is None and id_prefix is None:
            return self._listing(status, limit, before)
        params = q.find_params(
            now=self._clock(),
            upper=math.inf if before is None else before,
            status=status,
            name=name,
            id_prefix=id_prefix,
            limit=limit,
        )
        return self._find_statement(status, name, id_prefix), params


class PoolTimeout(Exception):
    """No pooled connection became free in time."""


class _Leases(abc.ABC):
    """At most ``size`` connections leased at once; waiting for one gives up after ``timeout`` s."""

    def __init__(self, size: int, timeout: float) -> None:
        self._size = size
        self._timeout = timeout
        self._free = self._semaphore(size)

    @abc.abstractmethod
    def _semaphore(self, size: int) -> Any:
        """The semaphore that counts the free leases."""

    def give_back(self) -> None:
        """Free a lease that ``take`` took."""
        self._free.release()

    def _busy(self) -> PoolTimeout:
        return PoolTimeout(f"all {self._size} connections stayed busy for {self._timeout:g} s")


class Leases(_Leases):
    """The leases of a pool that threads share: :meth:`take` blocks."""

    def _semaphore(self, size: int) -> Any:
        return threading.BoundedSemaphore(size)

    def take(self) -> None:
        """Wait for a free lease.

        Raises:
            PoolTimeout: none became free within the timeout.
        """
        if not self._free.acquire(timeout=self._timeout):
            raise self._busy()


class AsyncLeases(_Leases):
    """The leases of a pool in one event loop: :meth:`take` awaits."""

    def _semaphore(self, size: int) -> Any:
        return asyncio.BoundedSemaphore(size)

    async def take(self) -> None:
        """Wait for a free lease (see :meth:`Leases.take`)."""
        try:
            await asyncio.wait_for(self._free.acquire(), self._timeout)
        except asyncio.TimeoutError:
            raise self._busy() from None


class _LoopPool:
    """One event loop's pool, closed when the loop shuts down.

    ``asyncio.run`` closes every open async generator before closing its loop,
    so a generator parked at its ``yield`` closes the pool's connections while
    the loop still runs.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._guard = self._guarded()

    async def _guarded(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.pool.aclose()

    async def start(self) -> None:
        await self._guard.__anext__()


def wait_options(interval: Any, timeout: float) -> dict[str, Any]:
    """The keywords of psycopg's ``wait`` for an ``interval`` (maybe None) and a ``timeout``."""
    return {"timeout": timeout} if interval is None else {"interval": interval, "timeout": timeout}


def reply_timeout(pg: Any, limit: float) -> Exception:
    """The error of a call whose reply did not come within ``limit`` seconds (see no_reply)."""
    error: Exception = pg.OperationalError(f"no reply from the server within {limit:g} s")
    error.jobstatus_no_reply = True  # type: ignore[attr-defined]
    return error


def no_reply(exc: BaseException) -> bool:
    """True when the server may have run the call without answering: never run it again."""
    return getattr(exc, "jobstatus_no_reply", False) is True


def pooled(conn: Any) -> Any:
    """``conn``, marked as psycopg_pool marks a pooled connection.

    A store dropped without close() (common in scripts and tests) then closes
    its connections when collected without a ResourceWarning, as psycopg_pool's do.
    """
    conn._pool = None
    return conn


def job_records(notices: list[str], job_id: str) -> tuple[list[Record], bool]:
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
