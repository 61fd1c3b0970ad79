"""Redis and PostgreSQL as records pile up: is the cost per call flat, and what does a record cost?

    python -m bench.bench_scale_stores

Loads records through the ordinary store API (a tenth of them failed), at 1,000
and then 20,000 records, and times ``get``, an unthrottled write,
``recent(status="failed", limit=10)`` and five pages of ``recent(before=...)``.
The reference of each row is the same call at 1,000 records. Memory per record
on Redis is the ``used_memory`` delta; disk per record on PostgreSQL is
``pg_total_relation_size``. Uses the prefix ``scalebench:`` and the table
``scalebench``, removed afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jobstatus
from jobstatus._record import Change, utc_now_iso
from jobstatus.stores import Store
from jobstatus.stores.postgres import PostgresStore
from jobstatus.stores.redis import RedisStore

from ._harness import Row, alternate, report

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SIZES = (1_000, 20_000)


def load(store: Store, start: int, stop: int) -> None:
    for n in range(start, stop):
        state = "failed" if n % 10 == 0 else "completed"
        fields = {"status": state, "progress": 1.0, "updated_at": utc_now_iso()}
        store.write(f"job-{n:07d}", Change(set=fields, ttl=3600, finished_ttl=3600))


def calls(store: Store) -> dict[str, Callable[[int], None]]:
    def get(n: int) -> None:
        for _ in range(n):
            jobstatus.get("job-0000500", store=store)

    def write(n: int) -> None:
        for _ in range(n):
            fields = {"progress": 0.5, "updated_at": utc_now_iso()}
            store.write("job-0000500", Change(set=fields, ttl=3600, finished_ttl=3600))

    def failed(n: int) -> None:
        for _ in range(n):
            jobstatus.recent(status="failed", limit=10, store=store)

    def pages(n: int) -> None:
        for _ in range(n):
            before = None
            for _ in range(5):
                before = jobstatus.recent(limit=10, before=before, store=store)[-1]["updated_at"]

    return {"get": get, "write": write, "recent": failed, "5 pages": pages}


def measure(name: str, store: Store, size_of: Callable[[], int]) -> list[Row]:
    base_size = size_of()
    results, loaded = {}, 0
    for size in SIZES:
        load(store, loaded, size)
        loaded = size
        results[size] = alternate(calls(store), n=100, rounds=3)
    per_record = (size_of() - base_size) / SIZES[-1]
    return [
        Row(
            f"{name}: `{call}` at {SIZES[-1]:,} records",
            results[SIZES[-1]][call] * 1e3,
            f"same at {SIZES[0]:,}",
            results[SIZES[0]][call] * 1e3,
            "ms",
            "flat (>= 0.8x)",
            {"bytes_per_record": per_record},
        )
        for call in results[SIZES[0]]
    ]


def redis_rows() -> list[Row]:
    store = RedisStore.from_url(REDIS_URL, prefix="scalebench:")
    client = store._scripts().client

    def used_memory() -> int:
        return int(client.info("memory")["used_memory"])

    try:
        return measure("Redis", store, used_memory)
    finally:
        keys = list(client.scan_iter(match="scalebench:*", count=5000))
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start : start + 5000])
        store.close()


def postgres_rows() -> list[Row]:
    import psycopg

    store = PostgresStore.from_url(POSTGRES_URL, table="scalebench")
    store.migrate()

    def table_size() -> int:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            row = connection.execute("SELECT pg_total_relation_size('scalebench')").fetchone()
        return int(row[0]) if row else 0

    try:
        return measure("PostgreSQL", store, table_size)
    finally:
        store.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute("DROP TABLE IF EXISTS scalebench")


def main() -> str:
    rows = redis_rows() + postgres_rows()
    return report("Scale on Redis and PostgreSQL", rows, "scale_stores")


if __name__ == "__main__":
    main()
