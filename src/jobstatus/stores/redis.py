"""``redis://`` and ``rediss://``: one hash per job, merged by a Lua script.

A write is one round trip: a Lua script merges the fields, applies increments
(``HINCRBY``/``HINCRBYFLOAT``), sets the expiry from the resulting status,
updates the listing indexes and publishes the record to watchers. Reads are
``HGETALL``; batches are pipelined. See :mod:`._redis_common` for the key
layout. ``RedisStore(client=...)`` wraps a ready ``redis.Redis`` or
``redis.asyncio.Redis``.

The store is three parts, so that its calls are written once:
:mod:`._async.redis` holds the calls, written for asyncio;
:mod:`._sync.redis` is their sync twin, generated from it by
``scripts/unasync.py``; :mod:`._redis_base` holds what both sides share
(options, clients, errors). This module combines them.
"""

from __future__ import annotations

from typing import Any

from ._async.redis import AsyncPubSubSubscription, AsyncRedisIO
from ._redis_common import URL_OPTIONS
from ._sync.redis import PubSubSubscription, RedisIO
from ._url import take_options
from .base import AsyncSubscription, Subscription


class RedisStore(RedisIO, AsyncRedisIO):
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

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """A store from ``redis://`` or ``rediss://`` (``?prefix=...&timeout=...``)."""
        return cls(take_options(url, options, URL_OPTIONS, driver_reads_rest=True), **options)

    def subscribe(self, job_id: str) -> Subscription:
        subscription = PubSubSubscription(self, job_id)
        subscription.listen()  # now: no write after subscribe() returns is missed
        return subscription

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        return AsyncPubSubSubscription(self, job_id)  # it subscribes when entered
