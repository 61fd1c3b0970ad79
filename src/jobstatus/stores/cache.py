"""Any cache object with ``get(key)``, ``set(key, value, timeout)`` and ``delete(key)``.

A Django cache (``django.core.cache.caches["default"]``), a cachelib cache or
Flask-Caching all fit. Such a cache has no atomic merge: a write reads the
record, merges it in Python and sets it back, so two processes writing the same
job at the same moment can lose one another's keys. The store warns once when
it is built. Prefer Redis, memcached, PostgreSQL or SQLite when jobs write
from several processes at once.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from .._errors import StoreError
from .._record import Change, Record, dumps, loads, public
from .._rollup import write_through
from ._keys import safe_cache_key
from ._options import MEMCACHED_KEY_PREFIX_LENGTH, check_prefix, check_timeout
from .base import DEFAULT_TIMEOUT, Store, Written


@runtime_checkable
class CacheLike(Protocol):
    """What the cache adapter needs of a cache object."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any, timeout: Any) -> Any: ...
    def delete(self, key: str) -> Any: ...


def check_cache_options(prefix: object, timeout: object) -> tuple[str, float]:
    """A cache store's prefix (keys that suit every cache, memcached too) and timeout.

    Raises:
        ConfigurationError: either is wrong.
    """
    checked = check_prefix(prefix, max_length=MEMCACHED_KEY_PREFIX_LENGTH, memcached_safe=True)
    return checked, check_timeout(timeout)


class NonAtomicStoreWarning(UserWarning):
    """A store that cannot merge atomically was configured."""


class CacheStore(Store):
    """Keeps each record as a JSON string under one cache key.

    Args:
        cache: the cache object.
        prefix: prepended to every key: at most 48 characters of printable
            ASCII without spaces, so that keys suit every cache (memcached too).
        timeout: seconds a call may take (positive and finite); the cache keeps
            its own timeouts.

    Raises:
        ConfigurationError: the prefix or the timeout is wrong.

    Writes are not atomic across processes (see the module docs); within this
    process they are serialized by a lock.
    """

    atomic: ClassVar[bool] = False
    _warned: ClassVar[bool] = False

    def __init__(
        self, cache: CacheLike, *, prefix: str = "jobstatus:", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.prefix, self.timeout = check_cache_options(prefix, timeout)
        self.cache = cache
        self._lock = threading.Lock()
        if not CacheStore._warned:
            CacheStore._warned = True
            warnings.warn(
                f"{type(cache).__name__} has no atomic merge: concurrent writers to one job "
                "from several processes can lose keys. Use Redis, memcached, PostgreSQL or "
                "SQLite for that.",
                NonAtomicStoreWarning,
                stacklevel=3,
            )

    def describe(self) -> str:
        return f"cache {type(self.cache).__name__}"

    def _key(self, job_id: str) -> str:
        return safe_cache_key(self.prefix, job_id)

    def _call(self, what: str, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            raise StoreError(f"{self.describe()}: {what} failed: {exc}") from exc

    def _stored(self, raw: Any) -> Record | None:
        if raw is None:
            return None
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return loads(raw) if isinstance(raw, str) else None

    def _decode(self, raw: Any) -> Record | None:
        record = self._stored(raw)
        return public(record) if record is not None else None

    def write(self, job_id: str, change: Change) -> Written:
        with self._lock:  # one process's writers at a time; other processes may interleave

            def update(
                target: str, compute: Callable[[Record | None], Record | None]
            ) -> tuple[Record | None, Record | None]:
                key = self._key(target)
                old = self._stored(self._call("get", self.cache.get, key))
                new = compute(old)
                if new is not None:
                    ttl = max(1, round(change.ttl_for(new)))
                    self._call("set", self.cache.set, key, dumps(new), ttl)
                return old, new

            return write_through(update, job_id, change)

    def read(self, job_id: str) -> Record | None:
        return self._decode(self._call("get", self.cache.get, self._key(job_id)))

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        keys = [self._key(job_id) for job_id in job_ids]
        get_many = getattr(self.cache, "get_many", None)
        if get_many is None:
            return [self._decode(self._call("get", self.cache.get, key)) for key in keys]
        if type(self.cache).__module__.startswith("django"):
            # Django takes a list and answers a dict of the keys it found.
            found = self._call("get_many", get_many, keys)
            return [self._decode(found.get(key)) for key in keys]
        # cachelib and Flask-Caching take the keys as arguments and answer a list.
        return [self._decode(raw) for raw in self._call("get_many", get_many, *keys)]

    def delete(self, job_id: str) -> None:
        self._call("delete", self.cache.delete, self._key(job_id))
