"""Expiry at scale on Redis: 20,000 short-lived records go, 1,000 long-lived stay."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import jobstatus
from jobstatus import Batch
from jobstatus._record import Change
from jobstatus.stores.redis import RedisStore

from ._redis_servers import TidyRedisStore
from .stores import REDIS_URL, namespace, require_service

pytestmark = pytest.mark.redis

SHORT = 20_000
LONG = 1_000


@pytest.fixture
def store() -> Iterator[RedisStore]:
    require_service("Redis", REDIS_URL, 6379)
    built = TidyRedisStore.from_url(REDIS_URL, prefix=f"t{namespace()}:")
    yield built
    built.close()


def _index_sizes(store: RedisStore) -> int:
    client = store._scripts().client
    keys = list(client.scan_iter(match=f"{store.prefix}x:*", count=1000))
    return sum(int(client.zcard(key)) for key in keys)


def test_expired_records_leave_reads_counts_listings_and_indexes(store: RedisStore) -> None:
    for n in range(SHORT):
        store.write(f"s{n}", Change(set={"status": "failed"}, ttl=1, finished_ttl=1))
    for n in range(LONG):
        store.write(f"l{n}", Change(set={"status": "failed"}, ttl=600, finished_ttl=600))
    time.sleep(2.1)

    assert store.read("s0") is None and store.read(f"s{SHORT - 1}") is None
    assert Batch([f"s{n}" for n in range(0, SHORT, 97)], store=store).counts.get("failed", 0) == 0
    assert Batch([f"l{n}" for n in range(LONG)], store=store).counts["failed"] == LONG
    listed = jobstatus.recent(status="failed", limit=50, store=store)
    assert len(listed) == 50 and all(s.job_id.startswith("l") for s in listed)

    for n in range(LONG):  # later writes prune the expired index entries a few at a time
        store.write(f"l{n}", Change(set={"status": "failed"}, ttl=600, finished_ttl=600))
    assert _index_sizes(store) <= 3 * LONG  # all, by-status and expiry: the long-lived only
