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
from ..._record import Change, Record, dumps
from ..._rollup import MAX_DEPTH
from .._redis_base import RECONNECT_PAUSE, RedisBase
from .._redis_common import (
    READ_CHUNK,
    REBUILD_LIVE,
    ListingPlan,
    as_text,
    count_args,
    counts_of,
    dead_by_tag,
    decode_hash,
    decode_hashes,
    decode_message,
    first_move,
    move_args,
    newest_first,
    next_move,
    prefix_range,
    write_args,
    written,
)
from ..base import AsyncSubscription, Written


class AsyncRedisIO(RedisBase):
    """The calls of :class:`~jobstatus.stores.redis.RedisStore`: one round trip each."""

    async def awrite(self, job_id: str, change: Change) -> Written:
        layout = self._layout
        args = write_args(layout, job_id, change)
        scripts = await self._ascripts()
        with self._errors("write"):
            reply = await scripts.write(layout.script_keys(job_id), args)
            # Redis Cluster: each level of groups is one more call, in the group's slot.
            move = first_move(job_id, change, reply) if layout.defers else None
            for _ in range(MAX_DEPTH):
                if move is None:
                    break
                keys = layout.move_keys(move.group)
                answer = await scripts.move(keys, move_args(layout, move, change))
                move = next_move(move, answer)
            return written(reply)

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
            base = self._layout.base(self._layout.tag(job_id))
            await scripts.delete(self._layout.script_keys(job_id), [job_id, base])

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

    async def afind(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        if name is None and id_prefix is None:
            return await self.alist_recent(status, limit, before)
        if name is None:
            return await self._aprefixed(status, limit, before, id_prefix or "")
        client = (await self._ascripts()).client
        by_status = status is not None and await self._afewer_of_status(client, status, name)
        plan = ListingPlan(
            self._layout, status, limit, before, name=name, id_prefix=id_prefix, by_status=by_status
        )
        while True:
            with self._errors("find"):
                pipe = self._queue_pages(client.pipeline(transaction=False), plan)
                pages = await pipe.execute()
            unread = plan.take_pages(pages)
            if by_status:
                records = await self._aread_named(client, name, unread)
            else:
                records = await self.aread_many(unread)
                await self._aprune(self._layout.name_keys(name), unread, records)
            listed = plan.take_records(unread, records)
            if listed is not None:
                return listed

    async def _afewer_of_status(self, client: Any, status: str, name: str) -> bool:
        """Whether fewer jobs have ``status`` than ``name``: a search for both then walks
        the status's indexes (a few failed among 1,000,000 jobs), else the name's."""
        layout = self._layout
        with self._errors("find"):
            pipe = client.pipeline(transaction=False)
            for key in (*layout.listing_keys(status), *layout.name_keys(name)):
                pipe.zcard(key)
            sizes: list[int] = await pipe.execute()
        of_status = len(layout.listing_keys(status))
        return sum(sizes[:of_status]) < sum(sizes[of_status:])

    async def _aread_named(self, client: Any, name: str, ids: Sequence[str]) -> list[Record | None]:
        """The records of ``ids``, read only for those the name's index holds (the
        others cannot match; each stands as ``{}``, which no search keeps)."""
        layout = self._layout
        with self._errors("find"):
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                pipe.zscore(layout.name_key(layout.tag(job_id), name), job_id)
            scores = await pipe.execute()
        named = [job_id for job_id, score in zip(ids, scores, strict=True) if score is not None]
        found = dict(zip(named, await self.aread_many(named), strict=True))
        await self._asweep(named, list(found.values()))
        return [found.get(job_id, {}) for job_id in ids]

    async def _aprefixed(
        self, status: str | None, limit: int, before: float | None, id_prefix: str
    ) -> list[tuple[str, Record]]:
        """A search by id prefix: every id with it (from the ids indexes), newest first."""
        layout = self._layout
        client = (await self._ascripts()).client
        low, high = prefix_range(id_prefix)
        with self._errors("find"):
            pipe = client.pipeline(transaction=False)
            for key in layout.ids_keys():
                pipe.zrangebylex(key, low, high)
            found = [as_text(member) for page in await pipe.execute() for member in page]
            pipe = client.pipeline(transaction=False)
            for job_id in found:
                pipe.zscore(layout.index_of(layout.tag(job_id), None), job_id)
            scores = await pipe.execute() if found else []
        ordered = newest_first(found, scores, before)
        listed: list[tuple[str, Record]] = []
        step = max(limit, 64)
        for start in range(0, len(ordered), step):
            chunk = ordered[start : start + step]
            records = await self.aread_many(chunk)
            await self._asweep(chunk, records)
            for job_id, record in zip(chunk, records, strict=True):
                if record is not None and (status is None or record.get("status") == status):
                    listed.append((job_id, record))
            if len(listed) >= limit:
                break
        return listed[:limit]

    async def achild_ids(self, parent: str) -> list[str]:
        layout = self._layout
        client = (await self._ascripts()).client
        keys = layout.children_keys(parent)
        with self._errors("child_ids"):
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.zrange(key, 0, -1)
            found = [as_text(member) for page in await pipe.execute() for member in page]
            parents: list[Any] = []
            for start in range(0, len(found), READ_CHUNK):
                pipe = client.pipeline(transaction=False)
                for job_id in found[start : start + READ_CHUNK]:
                    pipe.hget(layout.record(job_id), "parent")
                parents += await pipe.execute()
        expected = dumps(parent)
        live = [
            job_id
            for job_id, text in zip(found, parents, strict=True)
            if text is not None and as_text(text) == expected
        ]
        gone: list[object | None] = [None if text is None else text for text in parents]
        await self._aprune(keys, found, gone)
        return sorted(live)

    async def acount_by_status(self) -> dict[str, int]:
        return (await self._acounts(None))[0]

    async def acount_stale(self, updated_before: float) -> int:
        return (await self._acounts(updated_before))[1]

    async def _acounts(self, cut: float | None) -> tuple[dict[str, int], int]:
        """Every tag's live counts (see COUNT_SCRIPT), summed: one call per tag (a
        script cannot be pipelined on a cluster), more where many entries expired."""
        layout = self._layout
        scripts = await self._ascripts()
        replies = []
        with self._errors("count"):
            for tag in layout.all_tags():
                reply: Any = [-1]
                while list(reply)[:1] == [-1]:
                    reply = await scripts.count(layout.indexes(tag), count_args(cut))
                replies.append(reply)
        return counts_of(replies)

    async def aannounce_cancel(self, job_id: str, request: Record) -> None:
        client = (await self._ascripts()).client
        message = dumps({"job_id": job_id, "request": request})
        with self._errors("announce_cancel"):
            # execute_command, not publish(): redis-py's async cluster has no publish()
            # before 5.1, and PUBLISH reaches every node's subscribers from any one.
            await client.execute_command("PUBLISH", self._layout.cancel_channel(), message)

    async def _aprune(
        self, keys: Sequence[str], ids: Sequence[str], records: Sequence[object | None]
    ) -> None:
        """Drop from a name or children index the ids whose records are gone (PRUNE_SCRIPT)."""
        dead = [job_id for job_id, record in zip(ids, records, strict=True) if record is None]
        if not dead:
            return
        layout = self._layout
        scripts = await self._ascripts()
        by_key = dict(zip(layout.all_tags(), keys, strict=True))
        with suppress(*self._failures()):
            for tag, gone in dead_by_tag(layout, dead, [None] * len(dead)):
                key = by_key.get(tag)
                if key is not None:
                    records_keys = [layout.record(job_id) for job_id in gone]
                    await scripts.prune([key, *records_keys], gone)

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
        try:
            await self._drop()  # an interrupted teardown (a cancel) still closes our client
        finally:
            if self._owned and self._client is not None:
                await self._client.aclose()
