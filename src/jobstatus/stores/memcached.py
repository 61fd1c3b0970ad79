"""``memcached://host:port[,host:port]``: one JSON value per job, merged by compare-and-swap.

A write reads the record with ``gets``, applies the change in Python and
stores it with ``cas`` (``add`` for a new record), trying again when another
writer got there first, so concurrent increments add up and keys set by
different writers are all kept. Ids are mapped to memcached-safe keys by
:func:`._keys.safe_cache_key` (no two ids share a key). memcached cannot list
its keys, so this store has no listing: ``jobstatus.recent()`` raises
``NotSupportedError``. Async calls run in a worker thread.

With several servers, keys are spread with pymemcache's ``HashClient`` ring,
but calls go straight to each server's pooled client: ``HashClient``'s own
failure handling would answer "not found" while a server is down and move its
keys to another server, and a broken store must never read as empty.
"""

from __future__ import annotations

import functools
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final
from urllib.parse import urlsplit

from .._errors import ConfigurationError, StoreError, WriteRefused
from .._record import (
    FLOAT_MAX,
    MAX_REASON_LENGTH,
    MAX_WRITERS,
    STATES,
    TRANSITION_ADDS,
    TRANSITION_SETS,
    WRITES_KEY,
    Change,
    Record,
    dumps,
    loads,
    loads_record,
    utc_now_iso,
)
from .._rollup import write_through
from . import _url
from ._keys import safe_cache_key
from ._options import MEMCACHED_KEY_PREFIX_LENGTH, check_prefix, check_timeout
from .base import DEFAULT_TIMEOUT, PerProcess, Store, Written, require

DEFAULT_PREFIX: Final = "jobstatus:"
DEFAULT_PORT: Final = 11211
MAX_PREFIX_LENGTH: Final = MEMCACHED_KEY_PREFIX_LENGTH  # keys within memcached's 250 bytes
MAX_VALUE_SIZE: Final = 1024 * 1024 - 1024  # memcached's default 1 MiB item, less its overhead
RELATIVE_TTL_LIMIT: Final = 30 * 24 * 3600  # longer expiries are read as a Unix time
READ_CHUNK: Final = 1_000  # keys per get_many
CAS_DEADLINE_FACTOR: Final = 1.0  # a write gives up after `timeout` seconds of lost races
#: What a write may put into the room each record keeps for its lifecycle (see
#: lifecycle_headroom): the transition, a cancel request, a group's counts.
HEADROOM_KEYS: Final = TRANSITION_SETS | TRANSITION_ADDS | {"cancel", "children"}


def _worst_lifecycle() -> tuple[int, int]:
    """Bytes the lifecycle keys take at their largest, and one history entry at its largest."""
    stamp = utc_now_iso(0)  # every stamp has the same length
    huge = 2**63
    keys: Record = {
        **{key: stamp for key in ("queued_at", "started_at", "finished_at", "updated_at")},
        "status": max(STATES, key=len),
        "progress": -int(FLOAT_MAX),
        "total": -int(FLOAT_MAX),
        "attempts": huge,
        WRITES_KEY: {f"{writer:016x}": huge for writer in range(MAX_WRITERS)},
        # A control character is escaped as \u0001: six bytes, the most per character.
        "cancel": {"requested_at": stamp, "reason": "\x01" * MAX_REASON_LENGTH},
        "children": dict.fromkeys(STATES, huge),
    }
    entry = {"status": max(STATES, key=len), "at": stamp, "attempt": huge}
    return len(dumps(keys).encode()), len(dumps(entry).encode()) + 1  # and its comma


LIFECYCLE_BYTES, HISTORY_ENTRY_BYTES = _worst_lifecycle()


def lifecycle_headroom(record: Record, history_limit: int) -> int:
    """Bytes a record keeps free for its job's lifecycle writes, whatever their order.

    Enough for every lifecycle key at its largest (timestamps, status, progress
    and total, attempts, the writers' sequences, a cancel request with the
    longest reason, a group's counts) and for the history entries still to come
    before ``history_limit`` is reached. A write of the job's own keys must
    leave it free, so the final transition always fits (issue 13, item 2).
    """
    history = record.get("history")
    kept = len(history) if isinstance(history, list) else 0
    return LIFECYCLE_BYTES + max(history_limit - kept, 0) * HISTORY_ENTRY_BYTES


def needs_headroom(change: Change) -> bool:
    """Whether ``change`` writes a key other than the lifecycle's: then it must leave
    :func:`lifecycle_headroom` free."""
    return any(key not in HEADROOM_KEYS for key in change.written_keys())


class MemcachedStore(Store):
    """Records as JSON values in memcached, merged with gets/cas.

    Args:
        servers: ``[(host, port), ...]``; usually given through :meth:`from_url`.
        client: instead of servers, a ready pymemcache ``Client``, ``PooledClient``
            or ``HashClient`` (it keeps its own timeouts; values must be left
            unserialized, which is pymemcache's default).
        prefix: put before every key (default ``jobstatus:``, at most 48 characters
            of printable ASCII without spaces).
        timeout: seconds to connect and for each reply (default 5); a write that
            keeps losing compare-and-swap races gives up after as long.
        max_value_size: bytes a record may take (default 1 MiB less 1 KiB);
            raise it if your servers run with a larger ``-I``. A write of a
            job's own keys must leave :func:`lifecycle_headroom` of it free
            (about 17 KB with the default history limit), so the job's final
            transition always fits; the lifecycle keys may use that room.

    Raises:
        ConfigurationError: pymemcache is missing, or an option is wrong.

    Example::

        store = MemcachedStore.from_url("memcached://10.0.0.1:11211,10.0.0.2:11211")
        jobstatus.configure(store=store)
    """

    def __init__(
        self,
        servers: Sequence[tuple[str, int]] | None = None,
        *,
        client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        max_value_size: int = MAX_VALUE_SIZE,
    ) -> None:
        self._memcache: Any = require("pymemcache", "memcached")
        require("pymemcache.client.hash", "memcached")
        if (servers is None) == (client is None):
            raise ConfigurationError("MemcachedStore needs servers or a client (one of them)")
        if servers is not None and not servers:
            raise ConfigurationError("MemcachedStore needs at least one server")
        self.prefix = check_prefix(prefix, max_length=MAX_PREFIX_LENGTH, memcached_safe=True)
        self.timeout = check_timeout(timeout)
        if isinstance(max_value_size, bool) or not isinstance(max_value_size, int):
            raise ConfigurationError(f"max_value_size must be an int; got {max_value_size!r}")
        self.max_value_size = max_value_size
        self._servers = list(servers) if servers is not None else None
        self._given = client
        self._given_lock = threading.Lock()
        # No reference back to the store: a store dropped without close() is
        # then freed at once, and its ring closes the sockets (see _Ring.__del__).
        self._clients = PerProcess(
            functools.partial(
                _build_ring, self._memcache, self._servers, client, self._given_lock, self.timeout
            )
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemcachedStore:
        """A store from ``memcached://host:port[,host:port]`` (``?prefix=...&timeout=...``)."""
        own = {"prefix": _url.text, "timeout": _url.seconds}
        parts = urlsplit(_url.take_options(url, options, own, driver_reads_rest=False))
        return cls(_parse_servers(parts.netloc, url), **options)

    def describe(self) -> str:
        if self._servers is None:
            return f"memcached ({type(self._given).__name__})"
        return "memcached://" + ",".join(f"{host}:{port}" for host, port in self._servers)

    # -- clients ---------------------------------------------------------------

    def _ring(self) -> _Ring:
        ring = self._clients.get()
        assert isinstance(ring, _Ring)
        return ring

    def key(self, job_id: str) -> str:
        """The memcached key that holds the record of ``job_id``."""
        return safe_cache_key(self.prefix, job_id)

    @contextmanager
    def _errors(self, what: str, job_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except (self._memcache.exceptions.MemcacheError, OSError) as exc:
            about = f" of job {job_id!r}" if job_id is not None else ""
            # A server with a smaller -I than max_value_size says so for each such value.
            too_large = isinstance(exc, self._memcache.exceptions.MemcacheServerError) and (
                "too large" in str(exc)
            )
            error = WriteRefused if too_large else StoreError
            raise error(f"{self.describe()}: {what}{about} failed: {exc}") from exc

    def _retrying(self, what: str, job_id: str | None, run: Any) -> Any:
        """Run ``run()``; once more if a pooled connection had been closed by a server restart.

        Every call here is safe to repeat: reads, ``add`` and ``cas`` change
        nothing when their condition no longer holds.
        """
        stale = (self._memcache.exceptions.MemcacheUnexpectedCloseError, ConnectionError)
        with self._errors(what, job_id):
            try:
                return run()
            except stale:
                return run()

    # -- the store -------------------------------------------------------------

    def _encode(self, job_id: str, record: Record, headroom: int) -> bytes:
        """The record as stored; refused when it leaves less than ``headroom`` bytes free."""
        data = dumps(record).encode("utf-8")
        if len(data) > self.max_value_size:
            raise WriteRefused(
                f"the record of job {job_id!r} would take {len(data):,} bytes; memcached "
                f"holds at most {self.max_value_size:,} per value. Store less data in the "
                "status (a path or URL to it instead), or raise max_value_size to match "
                "the servers' -I setting"
            )
        if len(data) + headroom > self.max_value_size:
            raise WriteRefused(
                f"the record of job {job_id!r} would take {len(data):,} bytes, leaving less "
                f"than the {headroom:,} bytes each record keeps free for its status, "
                f"timestamps and history (memcached holds at most {self.max_value_size:,} "
                "per value), so its final state could not be written. Store less data in "
                "the status (a path or URL to it instead), or raise max_value_size to "
                "match the servers' -I setting"
            )
        return data

    def write(self, job_id: str, change: Change) -> Written:
        ring = self._ring()
        # Only the job's own record keeps the room: a group's move writes lifecycle keys.
        keeps_headroom = needs_headroom(change)

        def update(
            target: str, compute: Callable[[Record | None], Record | None]
        ) -> tuple[Record | None, Record | None]:
            return self._update(ring, target, compute, change, keeps_headroom and target == job_id)

        # Each record is one compare-and-swap: a group's move is atomic per record,
        # not with its child's write (see docs/stores.md, memcached).
        return write_through(update, job_id, change)

    def _update(
        self,
        ring: _Ring,
        job_id: str,
        compute: Callable[[Record | None], Record | None],
        change: Change,
        keeps_headroom: bool,
    ) -> tuple[Record | None, Record | None]:
        """Store ``compute(old)`` for one record by gets + cas, retried until it wins."""
        key = self.key(job_id)
        deadline = time.monotonic() + self.timeout * CAS_DEADLINE_FACTOR
        attempt = 0
        while True:
            outcome: tuple[Record | None, Record | None] | None = self._retrying(
                "write",
                job_id,
                lambda: self._try_update(ring, key, job_id, compute, change, keeps_headroom),
            )
            if outcome is not None:
                return outcome
            attempt += 1
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{self.describe()}: write of job {job_id!r} lost {attempt} "
                    f"compare-and-swap races in a row within {self.timeout:g} s"
                )
            if attempt > 3:
                # Many writers on one key: spread them out so one of them wins.
                time.sleep(random.uniform(0, min(0.001 * attempt, 0.02)))

    def _try_update(
        self,
        ring: _Ring,
        key: str,
        job_id: str,
        compute: Callable[[Record | None], Record | None],
        change: Change,
        keeps_headroom: bool,
    ) -> tuple[Record | None, Record | None] | None:
        """One gets + cas (or add) round; None when another writer got there first."""
        with ring.client_for(key) as client:
            raw, token = client.gets(key)
            old = loads(raw) if raw is not None else None
            new = compute(old)
            if new is None:
                return old, None
            headroom = lifecycle_headroom(new, change.history_limit) if keeps_headroom else 0
            data = self._encode(job_id, new, headroom)
            expire = _expire(change.ttl_for(new))
            if raw is None:
                stored = client.add(key, data, expire=expire, noreply=False)
            else:
                stored = client.cas(key, data, token, expire=expire, noreply=False)
            return (old, new) if stored else None

    def read(self, job_id: str) -> Record | None:
        key = self.key(job_id)
        ring = self._ring()

        def run() -> Any:
            with ring.client_for(key) as client:
                return client.get(key)

        raw = self._retrying("read", job_id, run)
        return loads_record(raw) if raw is not None else None

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        keys = {job_id: self.key(job_id) for job_id in job_ids}
        ring = self._ring()
        found: dict[str, Any] = {}
        unique_keys = list(dict.fromkeys(keys.values()))
        for start in range(0, len(unique_keys), READ_CHUNK):
            chunk = unique_keys[start : start + READ_CHUNK]
            found.update(self._retrying("read_many", None, functools.partial(ring.get_many, chunk)))
        return [
            loads_record(found[key]) if found.get(key) is not None else None
            for key in (keys[job_id] for job_id in job_ids)
        ]

    def delete(self, job_id: str) -> None:
        key = self.key(job_id)
        ring = self._ring()

        def run() -> None:
            with ring.client_for(key) as client:
                client.delete(key, noreply=False)

        self._retrying("delete", job_id, run)

    def close(self) -> None:
        ring = self._clients.get()
        assert isinstance(ring, _Ring)
        ring.close()
        self._clients.forget()


def _build_ring(
    memcache: Any,
    servers: list[tuple[str, int]] | None,
    given: Any,
    lock: threading.Lock,
    timeout: float,
) -> _Ring:
    if given is not None:
        return _Ring.around(given, lock)
    assert servers is not None
    options = {
        "connect_timeout": timeout,
        "timeout": timeout,
        "no_delay": True,
        "default_noreply": False,
    }
    if len(servers) == 1:
        return _Ring.single(memcache.client.PooledClient(servers[0], **options))
    ring = memcache.client.hash.HashClient(servers, use_pooling=True, **options)
    return _Ring.hashed(ring, owned=True)


class _Ring:
    """Which client holds which key: one server, a hash ring of servers, or a given client."""

    def __init__(
        self, clients: dict[Any, Any], pick: Any, lock: threading.Lock | None, *, owned: bool
    ) -> None:
        self._clients = clients
        self._pick = pick
        self._lock = lock
        self._owned = owned

    @classmethod
    def single(cls, client: Any) -> _Ring:
        return cls({None: client}, _no_node, None, owned=True)

    @classmethod
    def hashed(cls, ring: Any, *, owned: bool) -> _Ring:
        return cls(ring.clients, _node_picker(ring), None, owned=owned)

    @classmethod
    def around(cls, client: Any, lock: threading.Lock) -> _Ring:
        if hasattr(client, "hasher") and hasattr(client, "clients"):
            return cls.hashed(client, owned=False)
        # A plain Client is one socket: not safe to share between threads.
        pooled = type(client).__name__ == "PooledClient"
        return cls({None: client}, _no_node, None if pooled else lock, owned=False)

    @contextmanager
    def client_for(self, key: str) -> Iterator[Any]:
        client = self._clients[self._pick(key)]
        if self._lock is None:
            yield client
            return
        with self._lock:
            yield client

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        by_node: dict[Any, list[str]] = {}
        for key in keys:
            by_node.setdefault(self._pick(key), []).append(key)
        found: dict[str, Any] = {}
        for node_keys in by_node.values():
            with self.client_for(node_keys[0]) as client:
                found.update(client.get_many(node_keys))
        return {_text(key): value for key, value in found.items()}

    def close(self) -> None:
        """Close the sockets this ring opened (a given client is left alone)."""
        if not self._owned:
            return
        for client in self._clients.values():
            with suppress(Exception):
                client.close()

    def __del__(self) -> None:
        self.close()


def _no_node(key: str) -> None:
    return None


def _node_picker(ring: Any) -> Any:
    def pick(key: str) -> Any:
        node = ring.hasher.get_node(key)
        if node is None:
            raise StoreError("no memcached server is configured")
        return node

    return pick


def _text(key: bytes | str) -> str:
    return key.decode("ascii") if isinstance(key, bytes) else key


def _expire(ttl: float) -> int:
    """memcached's expiry for ``ttl`` seconds: whole seconds, absolute past 30 days."""
    seconds = max(1, math.ceil(ttl))
    if seconds > RELATIVE_TTL_LIMIT:
        return int(time.time()) + seconds
    return seconds


def _parse_servers(netloc: str, url: str) -> list[tuple[str, int]]:
    """``host:port`` pairs from ``a:1,b,[::1]:2`` (port 11211 when left out)."""
    servers = []
    for item in netloc.split(","):
        host, port = item.strip(), DEFAULT_PORT
        if not host:
            raise ConfigurationError(f"memcached URL {url!r} names an empty server")
        if host.startswith("["):
            end = host.find("]")
            if end < 0:
                raise ConfigurationError(f"memcached URL {url!r} has an unclosed '['")
            host, rest = host[1:end], host[end + 1 :]
            if rest:
                port = _port(rest.removeprefix(":"), url)
        elif ":" in host:
            host, _, text = host.rpartition(":")
            port = _port(text, url)
        servers.append((host, port))
    return servers


def _port(text: str, url: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigurationError(f"memcached URL {url!r} has a bad port {text!r}")
    return int(text)
