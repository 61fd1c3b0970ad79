"""From a URL or a ready client to a store: one explicit table, drivers imported late."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigurationError
from ._url import redact
from .base import Store

# scheme -> (module, class, extra to install). Modules import without their driver.
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
    """Build a store from a URL.

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


def resolve_store(value: object) -> Store:
    """A Store from what ``configure(store=...)`` accepts: URL, Store or client."""
    if isinstance(value, Store):
        return value
    if isinstance(value, str):
        return store_from_url(value)
    return store_from_client(value)
