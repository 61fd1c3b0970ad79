"""``redis://`` and ``rediss://``: one hash per job, merged by a Lua script.

A write is one round trip: a Lua script checks the change's guard, removes,
merges and adds to fields (``HINCRBY``/``HINCRBYFLOAT``), appends the history
entries, sets the expiry from the resulting status, updates the indexes
(status, name, group, ids), publishes the record to watchers and moves the
job's groups (up to 8 levels), then answers what a :class:`~.base.Written`
says (applied, created, the pending cancel request, when a start was queued).
Reads are ``HGETALL``; batches are pipelined. Counts per status come from the
indexes (``ZCARD`` after dropping expired entries), searches by name and id
prefix from their own indexes, and cancel requests are announced on a
store-wide pub/sub channel (``<prefix>x:cancel``) that one listener thread per
process follows. See :mod:`._redis_common` for the key layout.
``RedisStore(client=...)`` wraps a ready ``redis.Redis`` or
``redis.asyncio.Redis``.

The store is three parts, so that its calls are written once:
:mod:`._async.redis` holds the calls, written for asyncio;
:mod:`._sync.redis` is their sync twin, generated from it by
``scripts/unasync.py``; :mod:`._redis_base` holds what both sides share
(options, clients, errors). This module combines them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from .._record import Record
from ._async.redis import AsyncPubSubSubscription, AsyncRedisIO
from ._redis_base import RECONNECT_PAUSE
from ._redis_common import URL_OPTIONS
from ._sync.redis import PubSubSubscription, RedisIO
from ._url import take_options
from .base import AsyncSubscription, Subscription

logger = logging.getLogger("jobstatus")


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

    def listen_for_cancels(self, deliver: Callable[[str, Record], None]) -> Callable[[], None]:
        listener = CancelListener(self, deliver)
        listener.start()
        return listener.stop


class CancelListener:
    """A daemon thread subscribed to the store's cancel channel (``P x:cancel``).

    :meth:`start` returns once the server confirmed the subscription (or after
    the store's timeout), so a request announced after it is delivered. On an
    error it subscribes again after a pause; requests announced meanwhile
    reach their jobs through the reply to their next write.
    """

    POLL = 0.25  # seconds between checks of stop() while no message comes

    def __init__(self, store: RedisStore, deliver: Callable[[str, Record], None]) -> None:
        self._store = store
        self._deliver = deliver
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobstatus-cancels", daemon=True)

    def start(self) -> None:
        """Start listening; wait (at most the store's timeout) for the subscription."""
        self._thread.start()
        self._ready.wait(self._store.timeout)

    def stop(self) -> None:
        """Stop listening (the thread ends within a fraction of a second)."""
        self._stopped.set()

    def _run(self) -> None:
        channel = self._store._layout.cancel_channel()
        while not self._stopped.is_set():
            client: Any = None
            owned = False
            pubsub: Any = None
            try:
                client, owned = self._store._listener_client()
                pubsub = client.pubsub()
                pubsub.subscribe(channel)
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=self.POLL)
                    kind = None if message is None else message.get("type")
                    if kind == "subscribe":
                        self._ready.set()
                    elif kind == "message":
                        self._hand_over(message["data"])
            except Exception:  # noqa: BLE001 - a dropped or closed connection: listen again
                logger.debug("the cancel listener lost its connection", exc_info=True)
                self._stopped.wait(RECONNECT_PAUSE)
            finally:
                self._close(pubsub, client if owned else None)

    def _hand_over(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            job_id, request = message["job_id"], message["request"]
        except (ValueError, TypeError, KeyError):
            return
        if isinstance(job_id, str) and isinstance(request, dict):
            try:
                self._deliver(job_id, request)
            except Exception:  # noqa: BLE001 - a delivery must not end the listener
                logger.exception("delivering a cancel request failed")

    def _close(self, pubsub: Any, client: Any) -> None:
        for closing in (pubsub, client):
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # noqa: BLE001 - closing a dropped connection
                    logger.debug("closing the cancel listener's connection failed", exc_info=True)
