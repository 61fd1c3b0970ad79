"""``redis://`` and ``rediss://``: one hash per job, merged by a Lua script.

A write is one round trip: a Lua script merges the fields, applies increments
(``HINCRBY``/``HINCRBYFLOAT``), sets the expiry from the resulting status,
updates the listing indexes and publishes the record to watchers. Reads are
``HGETALL``; batches are pipelined. See :mod:`._redis_common` for the key
layout. ``RedisStore(client=...)`` wraps a ready ``redis.Redis`` or
``redis.asyncio.Redis``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import ConfigurationError, StoreError, WriteRefused
from .._record import Change, Record
from ._redis_common import (
    DEFAULT_PREFIX,
    DELETE_SCRIPT,
    READ_CHUNK,
    REBUILD_LIVE,
    REFUSED,
    SWEEP_SCRIPT,
    URL_OPTIONS,
    WRITE_SCRIPT,
    KeyLayout,
    ListingPlan,
    check_prefix,
    check_timeout,
    dead_by_tag,
    decode_hash,
    decode_hashes,
    decode_message,
    write_args,
    written,
)
from ._url import redact, take_options
from .base import (
    DEFAULT_TIMEOUT,
    AsyncSubscription,
    Listing,
    Store,
    Subscription,
    Written,
    require,
)

RECONNECT_PAUSE = 0.2  # seconds a watcher waits before resubscribing after an error
# Connection settings a sync client and its async twin share (see _twin_options).
TWIN_OPTIONS = (
    "host",
    "port",
    "db",
    "username",
    "password",
    "path",
    "socket_timeout",
    "socket_connect_timeout",
    "client_name",
    "decode_responses",
    "encoding",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_check_hostname",
)


@dataclass
class _Scripts:
    """A client with its registered scripts (EVALSHA, loading them on NOSCRIPT)."""

    client: Any
    write: Any
    delete: Any
    sweep: Any

    @classmethod
    def register(cls, client: Any) -> _Scripts:
        """The client with the store's scripts registered on it."""
        scripts = (WRITE_SCRIPT, DELETE_SCRIPT, SWEEP_SCRIPT)
        return cls(client, *(client.register_script(script) for script in scripts))


class RedisStore(Store, Listing):
    """Records in Redis, merged atomically server-side, pushed to watchers.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...``;
            query options ``prefix`` and ``timeout`` are the store's, others go
            to redis-py.
        client: a ready ``redis.Redis`` or ``redis.asyncio.Redis`` instead of a URL.
            It keeps its own timeouts and retries.
        prefix: put before every key (default ``jobstatus:``).
        timeout: seconds every call may take (connect and each reply), default 5.
            A call retries once at once on a dropped connection, so it takes at
            most about twice this.
        client_options: passed to ``redis.Redis.from_url``.

    Raises:
        ConfigurationError: redis-py is missing, or an option is wrong.

    Example::

        store = RedisStore.from_url("redis://localhost:6379/0?prefix=myapp:")
        jobstatus.configure(store=store)
    """

    pushes: ClassVar[bool] = True
    _prefix_forbids: ClassVar[str] = ""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        **client_options: Any,
    ) -> None:
        self._redis: Any = require("redis", "redis")
        require("redis.asyncio", "redis")
        self.prefix = check_prefix(prefix, forbid=self._prefix_forbids)
        self.timeout = check_timeout(timeout)
        self._layout = self._make_layout(self.prefix)
        if (url is None) == (client is None):
            raise ConfigurationError(f"{type(self).__name__} needs a URL or a client (one of them)")
        if url is not None and not isinstance(url, str):
            raise ConfigurationError(f"a Redis URL must be a str, not {type(url).__name__}")
        self._url = url
        self._client_options = client_options
        self._given = client
        self._given_is_async = client is not None and self._is_async_client(client)
        self._sync: _Scripts | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """A store from ``redis://`` or ``rediss://`` (``?prefix=...&timeout=...``)."""
        return cls(take_options(url, options, URL_OPTIONS, driver_reads_rest=True), **options)

    # -- clients ---------------------------------------------------------------

    def _make_layout(self, prefix: str) -> KeyLayout:
        return KeyLayout(prefix)

    def _is_async_client(self, client: Any) -> bool:
        return type(client).__module__.startswith("redis.asyncio")

    def _retry(self, module: Any) -> Any:
        # One immediate retry, on a new connection, of a call whose connection the
        # server dropped (a restart, CLIENT KILL, an idle timeout), without making a
        # down server hang a call for long. Not after a timeout: that call's bound
        # would double. Sending a write again is safe: its origin applies it once.
        dropped = self._redis.exceptions.ConnectionError
        return module.retry.Retry(self._redis.backoff.NoBackoff(), 1, supported_errors=(dropped,))

    def _retry_options(self, module: Any) -> dict[str, Any]:
        # redis-py 5 retries only the errors a connection's retry_on_error names
        # (6.0 and later: those of the Retry); naming them in both works on 5 to 8.
        return {
            "retry": self._retry(module),
            "retry_on_error": [self._redis.exceptions.ConnectionError],
        }

    def _options(self, module: Any) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            **self._retry_options(module),
            **self._client_options,
        }

    def _build_sync(self) -> Any:
        if self._given is not None:
            return self._redis.Redis(**self._twin_options(self._given))
        return self._redis.Redis.from_url(self._url, **self._options(self._redis))

    def _build_async(self) -> Any:
        aioredis = self._redis.asyncio
        if self._given is not None:
            return aioredis.Redis(**self._twin_options(self._given))
        return aioredis.Redis.from_url(self._url, **self._options(aioredis))

    def _twin_options(self, client: Any) -> dict[str, Any]:
        """Options to reach the server a given client reaches, from the other side (sync/async)."""
        pool = client.connection_pool
        options = {k: v for k, v in pool.connection_kwargs.items() if k in TWIN_OPTIONS}
        if "path" in options:
            options["unix_socket_path"] = options.pop("path")
        if "SSL" in pool.connection_class.__name__:
            options["ssl"] = True
        options.setdefault("socket_timeout", self.timeout)
        options.setdefault("socket_connect_timeout", self.timeout)
        return options

    def _scripts(self) -> _Scripts:
        # redis-py pools notice a fork and reconnect in the child, so one
        # client serves every thread and process.
        if self._sync is None:
            client = self._given if self._given is not None and not self._given_is_async else None
            client = client if client is not None else self._build_sync()
            self._sync = _Scripts.register(client)
        return self._sync

    async def _ascripts(self) -> _Scripts:
        # An asyncio connection belongs to the loop that opened it: one client per loop.
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            self._forget_closed_loops()
            given = self._given if self._given_is_async else None
            client = given if given is not None else self._build_async()
            entry = _LoopClient(_Scripts.register(client), owned=given is None)
            await entry.start()
            self._loops[loop] = entry
        return entry.scripts

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._loops if loop.is_closed()]:
            del self._loops[loop]

    def _failures(self, *more: type[BaseException]) -> tuple[type[BaseException], ...]:
        """What redis-py raises when a call fails (a cluster's own errors are no RedisError)."""
        errors = self._redis.exceptions
        return (errors.RedisError, errors.RedisClusterException, OSError, *more)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._failures() as exc:
            refused = isinstance(exc, self._redis.exceptions.ResponseError) and str(exc).startswith(
                REFUSED
            )
            error = WriteRefused if refused else StoreError
            raise error(f"{self.describe()}: {what} failed: {exc}") from exc

    def describe(self) -> str:
        if self._url is not None:
            return redact(self._url)
        kwargs = self._given.connection_pool.connection_kwargs
        return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    # -- the store -------------------------------------------------------------

    def write(self, job_id: str, change: Change) -> Written:
        args = write_args(job_id, self._layout.channel(job_id), change)
        scripts = self._scripts()
        with self._errors("write"):
            return written(scripts.write(self._layout.script_keys(job_id), args))

    async def awrite(self, job_id: str, change: Change) -> Written:
        args = write_args(job_id, self._layout.channel(job_id), change)
        scripts = await self._ascripts()
        with self._errors("write"):
            return written(await scripts.write(self._layout.script_keys(job_id), args))

    def read(self, job_id: str) -> Record | None:
        client = self._scripts().client
        with self._errors("read"):
            return decode_hash(client.hgetall(self._layout.record(job_id)))

    async def aread(self, job_id: str) -> Record | None:
        client = (await self._ascripts()).client
        with self._errors("read"):
            return decode_hash(await client.hgetall(self._layout.record(job_id)))

    def _queue_reads(self, client: Any, job_ids: Sequence[str]) -> Any:
        """A pipeline (sync or async) of HGETALLs; one round trip per node."""
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._layout.record(job_id))
        return pipe

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        client = self._scripts().client
        records: list[Record | None] = []
        with self._errors("read_many"):
            for start in range(0, len(job_ids), READ_CHUNK):
                pipe = self._queue_reads(client, job_ids[start : start + READ_CHUNK])
                records += decode_hashes(pipe.execute())
        return records

    async def aread_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        client = (await self._ascripts()).client
        records: list[Record | None] = []
        with self._errors("read_many"):
            for start in range(0, len(job_ids), READ_CHUNK):
                pipe = self._queue_reads(client, job_ids[start : start + READ_CHUNK])
                records += decode_hashes(await pipe.execute())
        return records

    def delete(self, job_id: str) -> None:
        scripts = self._scripts()
        with self._errors("delete"):
            scripts.delete(self._layout.script_keys(job_id), [job_id])

    async def adelete(self, job_id: str) -> None:
        scripts = await self._ascripts()
        with self._errors("delete"):
            await scripts.delete(self._layout.script_keys(job_id), [job_id])

    # -- listing ---------------------------------------------------------------

    def _queue_pages(self, pipe: Any, plan: ListingPlan) -> Any:
        for key in plan.keys:
            pipe.zrevrangebyscore(key, plan.max_score, "-inf", 0, plan.size, True)
        return pipe

    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        plan = ListingPlan(self._layout, status, limit, before)
        client = self._scripts().client
        while True:
            with self._errors("list_recent"):
                pages = self._queue_pages(client.pipeline(transaction=False), plan).execute()
            unread = plan.take_pages(pages)
            records = self.read_many(unread)
            self._sweep(unread, records)
            listed = plan.take_records(unread, records)
            if listed is not None:
                return listed

    async def alist_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        plan = ListingPlan(self._layout, status, limit, before)
        client = (await self._ascripts()).client
        while True:
            with self._errors("list_recent"):
                pipe = self._queue_pages(client.pipeline(transaction=False), plan)
                pages = await pipe.execute()
            unread = plan.take_pages(pages)
            records = await self.aread_many(unread)
            await self._asweep(unread, records)
            listed = plan.take_records(unread, records)
            if listed is not None:
                return listed

    def _sweep(self, ids: Sequence[str], records: Sequence[Record | None]) -> None:
        """Drop the index entries of records found gone (see SWEEP_SCRIPT).

        Housekeeping only: a listing skips such entries anyway, so where the
        sweep cannot write (a read-only replica or user) it is left undone.
        """
        scripts = self._scripts()
        with suppress(*self._failures()):
            for tag, dead in dead_by_tag(self._layout, ids, records):
                scripts.sweep(self._layout.sweep_keys(tag, dead), [REBUILD_LIVE, *dead])

    async def _asweep(self, ids: Sequence[str], records: Sequence[Record | None]) -> None:
        scripts = await self._ascripts()
        with suppress(*self._failures()):
            for tag, dead in dead_by_tag(self._layout, ids, records):
                await scripts.sweep(self._layout.sweep_keys(tag, dead), [REBUILD_LIVE, *dead])

    # -- push ------------------------------------------------------------------

    def _pubsub_client(self, job_id: str) -> tuple[Any, bool]:
        """The client to subscribe with, and whether the subscription owns it."""
        return self._scripts().client, False

    async def _apubsub_client(self, job_id: str) -> tuple[Any, bool]:
        return (await self._ascripts()).client, False

    def subscribe(self, job_id: str) -> Subscription:
        client, owned = self._pubsub_client(job_id)
        subscription = _PubSubSubscription(self, client, owned, self._layout.channel(job_id))
        subscription.listen()
        return subscription

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        return _AsyncPubSubSubscription(self, job_id)

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None and sync.client is not self._given:
            sync.client.close()

    async def aclose(self) -> None:
        entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.stop()


class _LoopClient:
    """One event loop's async client, closed when the loop shuts down.

    ``asyncio.run`` closes every open async generator before closing its loop;
    a generator parked at its ``yield`` therefore runs its ``finally`` there
    and closes the client's connections while the loop still runs.
    """

    def __init__(self, scripts: _Scripts, *, owned: bool) -> None:
        self.scripts = scripts
        self.owned = owned
        self._guard: AsyncIterator[None] | None = None

    async def _guarded(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self.owned:
                await self.scripts.client.aclose()

    async def start(self) -> None:
        self._guard = self._guarded()
        await self._guard.__anext__()

    async def stop(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()  # type: ignore[attr-defined]


class _PubSubSubscription(Subscription):
    """Pushed records from a per-job channel, in the order they were written."""

    def __init__(self, store: RedisStore, client: Any, owned: bool, channel: str) -> None:
        self._store = store
        self._client = client
        self._owned = owned
        self._channel = channel
        self._pubsub: Any = None

    def listen(self) -> None:
        """Subscribe and wait for the server to confirm, so no later write is missed."""
        with self._store._errors("subscribe"):
            self._pubsub = self._client.pubsub()
            self._pubsub.subscribe(self._channel)
            deadline = time.monotonic() + self._store.timeout
            while time.monotonic() < deadline:
                message = self._pubsub.get_message(timeout=deadline - time.monotonic())
                if message is not None and message["type"] == "subscribe":
                    return
            raise self._store._redis.exceptions.TimeoutError("no SUBSCRIBE confirmation")

    def wait(self, timeout: float) -> list[Record] | None:
        try:
            if self._pubsub is None:
                self.listen()
                return None  # messages may have been missed while away: read again
            first = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if first is None:
                return None
            records = [decode_message(first["data"])]
            while True:
                more = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                if more is None:
                    return records
                records.append(decode_message(more["data"]))
        except self._store._failures(StoreError):
            self._drop()
            time.sleep(min(RECONNECT_PAUSE, max(timeout, 0.0)))
            return None

    def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with suppress(*self._store._failures()):
                pubsub.close()

    def close(self) -> None:
        self._drop()
        if self._owned:
            self._client.close()


class _AsyncPubSubSubscription(AsyncSubscription):
    """Async twin of :class:`_PubSubSubscription`; subscribes on first use."""

    def __init__(self, store: RedisStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._channel = store._layout.channel(job_id)
        self._client: Any = None
        self._owned = False
        self._pubsub: Any = None

    async def __aenter__(self) -> AsyncSubscription:
        await self.listen()
        return self

    async def listen(self) -> None:
        """Subscribe and wait for the server to confirm."""
        with self._store._errors("subscribe"):
            if self._client is None:
                self._client, self._owned = await self._store._apubsub_client(self._job_id)
            self._pubsub = self._client.pubsub()
            await self._pubsub.subscribe(self._channel)
            deadline = time.monotonic() + self._store.timeout
            while time.monotonic() < deadline:
                message = await self._pubsub.get_message(timeout=deadline - time.monotonic())
                if message is not None and message["type"] == "subscribe":
                    return
            raise self._store._redis.exceptions.TimeoutError("no SUBSCRIBE confirmation")

    async def wait(self, timeout: float) -> list[Record] | None:
        try:
            if self._pubsub is None:
                await self.listen()
                return None
            first = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if first is None:
                return None
            records = [decode_message(first["data"])]
            while True:
                more = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                if more is None:
                    return records
                records.append(decode_message(more["data"]))
        except self._store._failures(StoreError):
            await self._drop()
            await asyncio.sleep(min(RECONNECT_PAUSE, max(timeout, 0.0)))
            return None

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with suppress(*self._store._failures()):
                await pubsub.aclose()

    async def aclose(self) -> None:
        await self._drop()
        if self._owned and self._client is not None:
            await self._client.aclose()
