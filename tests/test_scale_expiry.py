"""Expiry at scale: expired records leave reads, counts, listings and the listing indexes.

Redis: 20,000 short-lived records go, 1,000 long-lived stay, and the store is
left idle (no writes prune the indexes) until a listing sweeps them.
PostgreSQL: the same with an injected clock, and ``purge`` removes exactly the
expired rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import jobstatus
from jobstatus import Batch
from jobstatus._record import Change
from jobstatus.stores import _redis_common
from jobstatus.stores._async import redis as async_redis
from jobstatus.stores._sync import redis as sync_redis
from jobstatus.stores.postgres import PostgresStore
from jobstatus.stores.redis import RedisStore
from jobstatus.stores.redis_cluster import RedisClusterStore

from ._redis_servers import TidyRedisClusterStore, TidyRedisStore, shared_cluster
from .stores import POSTGRES_URL, REDIS_URL, FakeClock, namespace, require_service

SHORT = 20_000
LONG = 1_000
# Index entries of one live record: all, exp, its status's, ids.
INDEXES = 4


def _finished(ttl: float) -> Change:
    return Change(set={"status": "failed"}, ttl=ttl, finished_ttl=ttl)


def _fill_redis(store: RedisStore, short: int, long: int, first: int = 0) -> None:
    """Short-lived ``s<n>`` (1 s) then long-lived ``l<n>`` (10 min) finished jobs."""
    scripts = store._scripts()
    layout = store._layout
    pipe = scripts.client.pipeline(transaction=False)
    jobs = [(f"s{n}", 1) for n in range(first, first + short)]
    jobs += [(f"l{n}", 600) for n in range(long)]
    if isinstance(store, RedisClusterStore):  # a cluster pipeline refuses scripts
        for job_id, ttl in jobs:
            store.write(job_id, _finished(ttl))
        return
    for job_id, ttl in jobs:
        args = _redis_common.write_args(layout, job_id, _finished(ttl))
        scripts.write(layout.script_keys(job_id), args, client=pipe)
    pipe.execute()  # the store's own write script, pipelined: the indexes of real writes


def _index_entries(store: RedisStore) -> int:
    client = store._scripts().client
    if isinstance(store, RedisClusterStore):
        keys = [key for tag in store._layout.all_tags() for key in store._layout.indexes(tag)]
    else:
        keys = store._layout.indexes("")
    return sum(int(client.zcard(key)) for key in keys)


@pytest.fixture
def redis_store() -> Iterator[RedisStore]:
    require_service("Redis", REDIS_URL, 6379)
    built = TidyRedisStore.from_url(REDIS_URL, prefix=f"t{namespace()}:")
    yield built
    built.close()


@pytest.mark.redis
def test_expired_records_leave_reads_counts_and_listings(redis_store: RedisStore) -> None:
    _fill_redis(redis_store, 0, LONG)
    _fill_redis(redis_store, SHORT, 0)  # newer: a listing meets them first
    time.sleep(2.1)
    # Expired entries wait in the indexes (all, expiry, by status): no write prunes them.
    assert _index_entries(redis_store) > INDEXES * LONG

    assert redis_store.read("s0") is None and redis_store.read(f"s{SHORT - 1}") is None
    short_ids = [f"s{n}" for n in range(0, SHORT, 97)]
    assert Batch(short_ids, store=redis_store).counts["missing"] == len(short_ids)
    assert Batch([f"l{n}" for n in range(LONG)], store=redis_store).counts["failed"] == LONG
    listed = jobstatus.recent(status="failed", limit=50, store=redis_store)
    assert len(listed) == 50 and all(s.job_id.startswith("l") for s in listed)
    # That listing met expired entries and swept the indexes: only the long-lived remain,
    # though nothing was written since they expired.
    assert _index_entries(redis_store) == INDEXES * LONG


@pytest.mark.redis
def test_a_listing_after_an_idle_spell_removes_the_expired_entries_it_meets(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for side in (async_redis, sync_redis):  # where the sweeps read it
        monkeypatch.setattr(side, "REBUILD_LIVE", 10)  # too many live ids to rebuild
    _fill_redis(redis_store, 500, 50)  # 500 expire below the 50 live ones...
    _fill_redis(redis_store, 1_500, 0, first=500)  # ...and 1,500 above them
    time.sleep(2.1)

    async def recent_then_close() -> list[jobstatus.Status]:
        try:
            return await jobstatus.arecent(limit=20, store=redis_store)
        finally:
            await redis_store.aclose()  # this loop's connections

    listed = asyncio.run(recent_then_close())
    assert len(listed) == 20 and all(s.job_id.startswith("l") for s in listed)
    # The 1,500 dead entries above the live ones were met and removed.
    assert INDEXES * 50 <= _index_entries(redis_store) <= INDEXES * (50 + 500)
    again = jobstatus.recent(limit=20, store=redis_store)
    assert [s.job_id for s in again] == [s.job_id for s in listed]


@pytest.mark.redis
def test_a_sweep_never_drops_a_record_written_meanwhile(redis_store: RedisStore) -> None:
    _fill_redis(redis_store, 200, 0)
    time.sleep(2.1)
    redis_store.write("s7", _finished(600))  # one expired id comes back to life
    listed = jobstatus.recent(limit=10, store=redis_store)
    assert [s.job_id for s in listed] == ["s7"]
    assert _index_entries(redis_store) == INDEXES


@pytest.mark.redis
def test_a_read_only_user_lists_without_sweeping(redis_store: RedisStore) -> None:
    _fill_redis(redis_store, 0, 20)
    _fill_redis(redis_store, 300, 0)
    time.sleep(2.1)
    admin = redis_store._scripts().client
    user = f"reader-{namespace()}"
    admin.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@read"])
    reader = RedisStore.from_url(
        REDIS_URL.replace("redis://", f"redis://{user}:pw@"), prefix=redis_store.prefix
    )
    try:
        listed = jobstatus.recent(limit=5, store=reader)
        assert [s.job_id for s in listed] == [f"l{n}" for n in range(19, 14, -1)]
        assert _index_entries(redis_store) > INDEXES * 20  # it could not sweep: none lost
    finally:
        reader.close()
        admin.acl_deluser(user)


@pytest.mark.redis_cluster
def test_a_listing_sweeps_expired_entries_on_a_cluster() -> None:
    store = TidyRedisClusterStore.from_url(shared_cluster().url, prefix=f"t{namespace()}:")
    try:
        _fill_redis(store, 0, 100)
        _fill_redis(store, 3_000, 0)
        time.sleep(2.1)
        listed = jobstatus.recent(limit=200, store=store)
        assert sorted(s.job_id for s in listed) == sorted(f"l{n}" for n in range(100))
        assert _index_entries(store) == INDEXES * 100
    finally:
        store.close()


@pytest.fixture
def postgres_clock() -> Iterator[tuple[PostgresStore, FakeClock]]:
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    clock = FakeClock()
    built = PostgresStore.from_url(POSTGRES_URL, table=f"t{namespace()}", clock=clock)
    built.migrate()
    yield built, clock
    built.drop()
    built.close()


@pytest.mark.postgres
def test_postgres_expiry_at_scale_with_an_injected_clock(
    postgres_clock: tuple[PostgresStore, FakeClock],
) -> None:
    store, clock = postgres_clock
    writes = [(f"s{n}", _finished(60)) for n in range(SHORT)]
    writes += [(f"l{n}", _finished(3600)) for n in range(LONG)]
    with store._lease() as (conn, _), conn.cursor() as cursor:
        params = [store._write_params(job_id, change) for job_id, change in writes]
        cursor.executemany(store._statements["write"], params)  # the store's own statement
    clock.advance(120)

    assert store.read("s0") is None and store.read("l0") == {"status": "failed"}
    short_ids = [f"s{n}" for n in range(0, SHORT, 97)]
    assert Batch(short_ids, store=store).counts["missing"] == len(short_ids)
    assert Batch([f"l{n}" for n in range(LONG)], store=store).counts["failed"] == LONG
    listed = jobstatus.recent(status="failed", limit=50, store=store)
    assert len(listed) == 50 and all(s.job_id.startswith("l") for s in listed)

    assert store.purge() == SHORT
    assert store.purge() == 0
    clock.advance(3600)
    assert store.purge() == LONG
