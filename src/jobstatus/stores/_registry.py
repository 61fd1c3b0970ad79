"""From a URL or a ready client to a store: one explicit table, drivers imported late."""

from __future__ import annotations

import importlib
import logging
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigurationError
from ._url import redact
from .base import Store

logger = logging.getLogger("jobstatus")

# scheme -> (module, class, extra to install). Modules import without their driver.
# A scheme's module is imported when a URL of that scheme is resolved, not before: the
# Django stores need Django and live with its integration, a layer above the stores,
# so they are named by path here and no store imports them (tests/test_config.py).
SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("jobstatus.stores.memory", "MemoryStore", None),
    "sqlite": ("jobstatus.stores.sqlite", "SQLiteStore", None),
    "redis": ("jobstatus.stores.redis", "RedisStore", "redis"),
    "rediss": ("jobstatus.stores.redis", "RedisStore", "redis"),
    "redis+cluster": ("jobstatus.stores.redis_cluster", "RedisClusterStore", "redis"),
    "memcached": ("jobstatus.stores.memcached", "MemcachedStore", "memcached"),
    "postgresql": ("jobstatus.stores.postgres", "PostgresStore", "postgres"),
    "postgres": ("jobstatus.stores.postgres", "PostgresStore", "postgres"),
    "django-cache": ("jobstatus.integrations.django.stores", "DjangoCacheStore", "django"),
    "django-db": ("jobstatus.integrations.django.stores", "DjangoDatabaseStore", "django"),
}

# Ready clients, recognised by the module of their class so no driver is imported.
CLIENTS: list[tuple[str, str, str]] = [
    ("redis.cluster", "jobstatus.stores.redis_cluster", "RedisClusterStore"),
    ("redis.asyncio.cluster", "jobstatus.stores.redis_cluster", "RedisClusterStore"),
    ("redis", "jobstatus.stores.redis", "RedisStore"),
    ("pymemcache", "jobstatus.stores.memcached", "MemcachedStore"),
    ("psycopg_pool", "jobstatus.stores.postgres", "PostgresStore"),
    ("psycopg", "jobstatus.stores.postgres", "PostgresStore"),
]


def _store_class(module_name: str, class_name: str, extra: str | None = None) -> Any:
    # Store modules import without their driver; the driver is imported (and a
    # missing one reported with its extra, see base.require) when a store is built.
    return getattr(importlib.import_module(module_name), class_name)


def store_from_url(url: str, **options: Any) -> Store:
    """Build a new store from a URL: yours to close.

    A URL given as ``store=`` elsewhere (``configure``, ``get``, ``track``...) is
    instead the process's one store for that URL (:func:`shared_store`).
    Schemes: ``memory://``, ``sqlite:///path.db``, ``redis://``, ``rediss://``,
    ``redis+cluster://host:port[,host:port]``, ``memcached://host:port[,host:port]``,
    ``postgresql://``. Options go to the store's constructor.

    Raises:
        ConfigurationError: an unknown scheme, a malformed URL or a missing driver
            (the message names the extra to install).

    Example::

        store = jobstatus.store_from_url("sqlite:///status.db", timeout=2)
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a store URL must be a str, not {type(url).__name__}")
    try:
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    except ValueError as exc:
        raise ConfigurationError(f"malformed store URL: {exc}") from exc
    if scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise ConfigurationError(f"unknown store URL {redact(url)!r}; known schemes: {known}")
    store_class = _store_class(*SCHEMES[scheme])
    try:
        store: Store = store_class.from_url(url, **options)
    except ValueError as exc:  # urllib's verdicts on ports, IPv6 brackets, ...
        raise ConfigurationError(f"malformed {scheme} store URL: {exc}") from exc
    return store


def store_from_client(client: object, **options: Any) -> Store:
    """Wrap a ready client (redis, pymemcache, psycopg) or any get/set/delete cache."""
    module = type(client).__module__
    for prefix, module_name, class_name in CLIENTS:
        if module == prefix or module.startswith(prefix + "."):
            store: Store = _store_class(module_name, class_name)(client=client, **options)
            return store
    from .cache import CacheLike, CacheStore

    if isinstance(client, CacheLike):
        return CacheStore(client, **options)
    raise ConfigurationError(
        f"cannot use a {type(client).__name__} as a store: give a store URL, a "
        "jobstatus.Store, a redis/pymemcache/psycopg client, or an object with "
        "get(key), set(key, value, timeout) and delete(key)"
    )


# The stores built from URLs given as ``store=``, one per URL, newest use last. Bounded:
# an app that composes URLs (a prefix per tenant) keeps the most recently used ones.
SHARED_LIMIT = 64
_shared: OrderedDict[str, Store] = OrderedDict()
_shared_lock = threading.Lock()


def shared_store(url: str) -> Store:
    """The process's store for ``url``: built on first use, then reused.

    ``configure(store=url)``, ``get(job, store=url)``, a task's ``store=url`` and a web
    app given the URL all share one store, and so its connections, instead of opening a
    pool per call. Past :data:`SHARED_LIMIT` URLs the least recently used store is
    closed (a closed store reconnects if it is used again).
    """
    with _shared_lock:
        store = _shared.get(url)
        if store is not None:
            _shared.move_to_end(url)
            return store
    built = store_from_url(url)
    with _shared_lock:
        store = _shared.setdefault(url, built)
        _shared.move_to_end(url)
        evicted = [_shared.popitem(last=False)[1] for _ in range(len(_shared) - SHARED_LIMIT)]
    if store is not built:  # another thread built it first
        evicted.append(built)
    for old in evicted:
        _close_quietly(old)
    return store


def close_shared_stores() -> None:
    """Close and forget every store :func:`shared_store` built (for tests)."""
    with _shared_lock:
        stores = list(_shared.values())
        _shared.clear()
    for store in stores:
        _close_quietly(store)


def _close_quietly(store: Store) -> None:
    # Closing only releases connections: a store that fails to (its server gone)
    # must not fail the call that happened to evict it.
    try:
        store.close()
    except Exception:
        logger.debug("closing %s failed", store.describe(), exc_info=True)


def resolve_store(value: object) -> Store:
    """A Store from what ``configure(store=...)`` accepts: URL, Store or client.

    A URL gives the process's one store for it (:func:`shared_store`).
    """
    if isinstance(value, Store):
        return value
    if isinstance(value, str):
        return shared_store(value)
    return store_from_client(value)
