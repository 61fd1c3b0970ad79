"""The Redis store's calls to the server, each written once.

The async calls in :mod:`jobstatus.stores._async.redis` are the source; the
sync ones in :mod:`jobstatus.stores._sync.redis` are generated from them by
``scripts/unasync.py``. :class:`jobstatus.stores.redis.RedisStore` combines both
with :class:`jobstatus.stores._redis_base.RedisBase` (options, clients, errors).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from ..._errors import StoreError
from ..._record import Change, Record
from .._redis_base import RECONNECT_PAUSE, RedisBase
from .._redis_common import (
    READ_CHUNK,
    REBUILD_LIVE,
    ListingPlan,
    dead_by_tag,
    decode_hash,
    decode_hashes,
    decode_message,
    write_args,
    written,
)
from ..base import AsyncSubscription, Written


class AsyncRedisIO(RedisBase):
    """The calls of :class:`~jobstatus.stores.redis.RedisStore`: one round trip each."""

    async def awrite(self, job_id: str, change: Change) -> Written:
        args = write_args(job_id, self._layout.channel(job_id), change)
        scripts = await self._ascripts()
        with self._errors("write"):
            return written(await scripts.write(self._layout.script_keys(job_id), args))

    async def aread(self, job_id: str) -> Record | None:
        client = (await self._ascripts()).client
        with self._errors("read"):
            return decode_hash(await client.hgetall(self._layout.record(job_id)))

    async def aread_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        client = (await self._ascripts()).client
        records: list[Record | None] = []
        with self._errors("read_many"):
            for start in range(0, len(job_ids), READ_CHUNK):
                pipe = self._queue_reads(client, job_ids[start : start + READ_CHUNK])
                records += decode_hashes(await pipe.execute())
        return records

    async def adelete(self, job_id: str) -> None:
        scripts = await self._ascripts()
        with self._errors("delete"):
            await scripts.delete(self._layout.script_keys(job_id), [job_id])

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

    async def _asweep(self, ids: Sequence[str], records: Sequence[Record | None]) -> None:
        """Drop the index entries of records found gone (see SWEEP_SCRIPT).

        Housekeeping only: a listing skips such entries anyway, so where the
        sweep cannot write (a read-only replica or user) it is left undone.
        """
        scripts = await self._ascripts()
        with suppress(*self._failures()):
            for tag, dead in dead_by_tag(self._layout, ids, records):
                await scripts.sweep(self._layout.sweep_keys(tag, dead), [REBUILD_LIVE, *dead])


class AsyncPubSubSubscription(AsyncSubscription):
    """Pushed records from one job's channel, in the order they were written.

    It subscribes when entered (or at its first wait), and waits for the
    server's confirmation, so no write after that is missed.
    """

    def __init__(self, store: AsyncRedisIO, job_id: str) -> None:
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
        """Subscribe, unless subscribed already, and wait for the server to confirm."""
        if self._pubsub is not None:
            return
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
                return None  # messages may have been missed while away: read again
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
