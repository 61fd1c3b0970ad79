"""What the Redis store's sync and async sides share: options, clients and errors.

:class:`RedisBase` makes no call to the server. The calls are written once, for
asyncio, in :mod:`._async.redis`; their sync twin :mod:`._sync.redis` is
generated from it; :class:`jobstatus.stores.redis.RedisStore` combines the two.
What differs between the sides is here, written for each: a sync client serves
every thread and process, an async one belongs to the event loop it was made in.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import ConfigurationError, StoreError, WriteRefused
from ._options import check_prefix, check_timeout
from ._redis_common import (
    COUNT_SCRIPT,
    DEFAULT_PREFIX,
    DELETE_SCRIPT,
    MAX_PREFIX_LENGTH,
    MOVE_SCRIPT,
    PRUNE_SCRIPT,
    REFUSED,
    SWEEP_SCRIPT,
    WRITE_SCRIPT,
    KeyLayout,
    ListingPlan,
)
from ._url import redact
from .base import DEFAULT_TIMEOUT, CancelPush, Listing, Push, Store, require

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
class Scripts:
    """A client with its registered scripts (EVALSHA, loading them on NOSCRIPT)."""

    client: Any
    write: Any
    delete: Any
    sweep: Any
    move: Any
    prune: Any
    count: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        """The client with the store's scripts registered on it."""
        scripts = (
            WRITE_SCRIPT,
            DELETE_SCRIPT,
            SWEEP_SCRIPT,
            MOVE_SCRIPT,
            PRUNE_SCRIPT,
            COUNT_SCRIPT,
        )
        return cls(client, *(client.register_script(script) for script in scripts))


class RedisBase(Listing, Push, CancelPush, Store):
    """The Redis store without its calls (see :class:`.redis.RedisStore`)."""

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
        self.prefix = check_prefix(
            prefix,
            max_length=MAX_PREFIX_LENGTH,
            forbid=self._prefix_forbids,
            because="on Redis Cluster the store puts its own hash tag after the prefix",
        )
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
        self._sync: Scripts | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )

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

    def _scripts(self) -> Scripts:
        # redis-py pools notice a fork and reconnect in the child, so one
        # client serves every thread and process.
        if self._sync is None:
            client = self._given if self._given is not None and not self._given_is_async else None
            client = client if client is not None else self._build_sync()
            self._sync = Scripts.register(client)
        return self._sync

    async def _ascripts(self) -> Scripts:
        # An asyncio connection belongs to the loop that opened it: one client per loop.
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            self._forget_closed_loops()
            given = self._given if self._given_is_async else None
            client = given if given is not None else self._build_async()
            entry = _LoopClient(Scripts.register(client), owned=given is None)
            await entry.start()
            self._loops[loop] = entry
        return entry.scripts

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._loops if loop.is_closed()]:
            del self._loops[loop]

    def _pubsub_client(self, job_id: str) -> tuple[Any, bool]:
        """The client to subscribe with, and whether the subscription owns it."""
        return self._scripts().client, False

    def _listener_client(self) -> tuple[Any, bool]:
        """A client of its own for the cancel listener (closing the store leaves it be)."""
        return self._build_sync(), True

    async def _apubsub_client(self, job_id: str) -> tuple[Any, bool]:
        return (await self._ascripts()).client, False

    def close(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None and sync.client is not self._given:
            sync.client.close()

    async def aclose(self) -> None:
        entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.stop()

    # -- what the calls share --------------------------------------------------

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

    def _queue_reads(self, client: Any, job_ids: Sequence[str]) -> Any:
        """A pipeline (sync or async) of HGETALLs; one round trip per node."""
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._layout.record(job_id))
        return pipe

    def _queue_pages(self, pipe: Any, plan: ListingPlan) -> Any:
        for key in plan.keys:
            pipe.zrevrangebyscore(key, plan.max_score, "-inf", 0, plan.size, True)
        return pipe


class _LoopClient:
    """One event loop's async client, closed when the loop shuts down.

    ``asyncio.run`` closes every open async generator before closing its loop;
    a generator parked at its ``yield`` therefore runs its ``finally`` there
    and closes the client's connections while the loop still runs.
    """

    def __init__(self, scripts: Scripts, *, owned: bool) -> None:
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
