"""Redis and PostgreSQL with a million records: flat cost per call, bytes per record, expiry.

    python -m bench.bench_scale_stores                  # 1,000 then 1,000,000 records
    BENCH_SCALE_RECORDS=100000 python -m bench.bench_scale_stores   # a quicker run

Fills each store through its own write path, pipelined (``bench/_bulk.py``: the
same Lua script or SQL statement as ``store.write``, a tenth of the records
failed), to 1,000 and then to a million records, and at each size times
``get``, an unthrottled write, ``recent(status="failed", limit=10)``, five pages
of ``recent(limit=10, before=...)`` and a ``Batch`` of 1,000 ids. The reference
of each row is the same call at 1,000 records. Memory per record on Redis is the
``used_memory`` delta; disk per record on PostgreSQL is ``pg_total_relation_size``
after ``VACUUM``.

Then every record expires at once, the worst case for the listing indexes:

- PostgreSQL, through an injected clock two hours ahead: ``get`` and ``recent``
  see nothing, and ``purge()`` removes every row (its count and time reported);
- Redis, by deleting every record hash and back-dating the expiry index, which
  is the state a mass expiry leaves before writes prune the indexes: the first
  ``recent()`` after it, the next one, and how many index entries remain.

Uses the prefix ``scalebench:`` and the table ``scalebench``, removed afterwards.
Takes about six minutes for a million records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import jobstatus
from jobstatus import Batch
from jobstatus._record import Change, utc_now_iso
from jobstatus.stores import Store
from jobstatus.stores.postgres import PostgresStore
from jobstatus.stores.redis import RedisStore

from ._bulk import chunks, finished_jobs, load_postgres, load_redis
from ._harness import Row, alternate, report

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RECORDS = int(os.environ.get("BENCH_SCALE_RECORDS", "1000000"))
SIZES = (1_000, RECORDS)
PROBE = "job-0000500"


def calls(store: Store) -> dict[str, Callable[[int], None]]:
    batch_ids = [f"job-{n:07d}" for n in range(0, 1_000)]

    def get(n: int) -> None:
        for _ in range(n):
            jobstatus.get(PROBE, store=store)

    def write(n: int) -> None:
        for _ in range(n):
            fields = {"progress": 0.5, "updated_at": utc_now_iso()}
            store.write(PROBE, Change(set=fields, ttl=3600, finished_ttl=3600))

    def failed(n: int) -> None:
        for _ in range(n):
            jobstatus.recent(status="failed", limit=10, store=store)

    def pages(n: int) -> None:
        for _ in range(n):
            before = None
            for _ in range(5):
                before = jobstatus.recent(limit=10, before=before, store=store)[-1]["updated_at"]

    def batch(n: int) -> None:
        for _ in range(n):
            assert sum(Batch(batch_ids, store=store).counts.values()) == len(batch_ids)

    return {"get": get, "write": write, "recent": failed, "5 pages": pages, "Batch(1,000)": batch}


def measure(
    name: str, store: Store, load: Callable[[int, int], float], size_of: Callable[[], int]
) -> tuple[list[Row], dict[str, float]]:
    base_size = size_of()
    results, load_seconds, loaded = {}, 0.0, 0
    for size in SIZES:
        load_seconds += load(loaded, size)
        loaded = size
        results[size] = alternate(calls(store), n=50, rounds=3)
    figures = {
        "bytes_per_record": (size_of() - base_size) / RECORDS,
        "load_seconds": load_seconds,
        "loaded_per_second": RECORDS / load_seconds,
    }
    rows = [
        Row(
            f"{name}: `{call}` at {RECORDS:,} records",
            results[RECORDS][call] * 1e3,
            f"same at {SIZES[0]:,}",
            results[SIZES[0]][call] * 1e3,
            "ms",
            "flat (>= 0.8x)",
            figures,
        )
        for call in results[SIZES[0]]
    ]
    return rows, figures


def timed(run: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def redis_rows() -> list[Row]:
    import redis

    store = RedisStore.from_url(REDIS_URL, prefix="scalebench:")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=300)  # for the bench's own calls

    def load(start: int, stop: int) -> float:
        return timed(lambda: load_redis(store, finished_jobs(start, stop)))[1]

    def used_memory() -> int:
        return int(client.info("memory")["used_memory"])

    def index_entries() -> int:
        return sum(int(client.zcard(key)) for key in client.scan_iter(match="scalebench:x:*"))

    try:
        rows, figures = measure("Redis", store, load, used_memory)
        # A mass expiry: every record gone at once, its index entries not yet pruned.
        for keys in chunks(client.scan_iter(match="scalebench:r:*", count=10_000), 10_000):
            client.unlink(*keys)
        client.zunionstore("scalebench:x:exp", {"scalebench:x:exp": 0})
        entries_before = index_entries()
        first, first_seconds = timed(lambda: jobstatus.recent(limit=10, store=store))
        second, second_seconds = timed(lambda: jobstatus.recent(limit=10, store=store))
        assert first == [] and second == [], "expired records were listed"
        figures = {
            **figures,
            "index_entries_after_expiry": entries_before,
            "first_recent_after_expiry_s": first_seconds,
            "second_recent_after_expiry_s": second_seconds,
            "index_entries_after_listing": index_entries(),
        }
        rows.append(_expiry_row("Redis: first `recent()` after every record expired", figures))
        return rows
    finally:
        for keys in chunks(client.scan_iter(match="scalebench:*", count=10_000), 10_000):
            client.unlink(*keys)
        client.close()
        store.close()


def postgres_rows() -> list[Row]:
    import psycopg

    store = PostgresStore.from_url(POSTGRES_URL, table="scalebench")
    store.drop()
    store.migrate()

    def load(start: int, stop: int) -> float:
        seconds = timed(lambda: load_postgres(store, finished_jobs(start, stop)))[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute("ANALYZE scalebench")  # as autovacuum would, soon after
        return seconds

    def table_size() -> int:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE scalebench")
            row = connection.execute("SELECT pg_total_relation_size('scalebench')").fetchone()
        return int(row[0]) if row else 0

    try:
        rows, figures = measure("PostgreSQL", store, load, table_size)
        later = PostgresStore.from_url(
            POSTGRES_URL, table="scalebench", clock=lambda: time.time() + 7200
        )
        try:
            listed, listing_seconds = timed(lambda: jobstatus.recent(limit=10, store=later))
            assert listed == [] and later.read(PROBE) is None, "expired records were read"
            removed, purge_seconds = timed(later.purge)
        finally:
            later.close()
        figures = {
            **figures,
            "recent_after_expiry_s": listing_seconds,
            "purged_rows": float(removed),  # type: ignore[arg-type]
            "purge_seconds": purge_seconds,
        }
        rows.append(_expiry_row("PostgreSQL: `recent()` after every record expired", figures))
        return rows
    finally:
        store.drop()
        store.close()


def _expiry_row(what: str, figures: dict[str, float]) -> Row:
    seconds = figures.get("first_recent_after_expiry_s", figures.get("recent_after_expiry_s", 0))
    return Row(what, seconds * 1e3, "(no reference)", seconds * 1e3, "ms", "", figures)


def main() -> str:
    rows = redis_rows() + postgres_rows()
    return report(f"Scale on Redis and PostgreSQL ({RECORDS:,} records)", rows, "scale_stores")


if __name__ == "__main__":
    main()
