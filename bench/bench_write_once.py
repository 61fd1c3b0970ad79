"""What exactly-once increments cost: a write that adds to a number, with and without its origin.

    python -m bench.bench_write_once

Inside a job, every write that adds to a number carries ``(writer id,
sequence)``, which the store checks and records in the same atomic step, so a
write re-sent after a lost reply counts once. The reference of each row is the
same write without an origin (what such a write cost before). Uses the prefix
``oncebench:``, the table ``oncebench`` and a temporary SQLite file.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from jobstatus._record import Change, utc_now_iso
from jobstatus.stores import SQLiteStore, Store
from jobstatus.stores.memcached import MemcachedStore
from jobstatus.stores.postgres import PostgresStore
from jobstatus.stores.redis import RedisStore

from ._harness import Row, alternate, report

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MEMCACHED_URL = os.environ.get("JOBSTATUS_TEST_MEMCACHED_URL", "memcached://127.0.0.1:11211")


def sides(store: Store) -> dict[str, Callable[[int], None]]:
    sequence = itertools.count(1)

    def tick(origin: tuple[str, int] | None) -> Change:
        fields = {"updated_at": utc_now_iso()}
        return Change(set=fields, incr={"progress": 1}, origin=origin)

    def plain(n: int) -> None:
        for _ in range(n):
            store.write("bench-once", tick(None))

    def once(n: int) -> None:
        for _ in range(n):
            store.write("bench-once", tick(("0123456789abcdef", next(sequence))))

    return {"plain": plain, "once": once}


def row(name: str, store: Store, n: int) -> Row:
    try:
        result = alternate(sides(store), n=n, rounds=5)
    finally:
        store.delete("bench-once")
        store.close()
    return Row(
        f"a write adding to progress, {name}",
        result["once"] * 1e6,
        "the same without an origin",
        result["plain"] * 1e6,
        "us/op",
        "",
    )


def main() -> str:
    with tempfile.TemporaryDirectory() as folder:
        rows = [row("SQLite", SQLiteStore(Path(folder) / "once.db"), 2_000)]
    rows.append(row("Redis", RedisStore.from_url(REDIS_URL, prefix="oncebench:"), 2_000))
    postgres = PostgresStore.from_url(POSTGRES_URL, table="oncebench")
    try:
        rows.append(row("PostgreSQL", postgres, 1_000))
    finally:
        postgres.drop()
    rows.append(row("memcached", MemcachedStore.from_url(MEMCACHED_URL), 2_000))
    return report("Exactly-once increments: the cost of the origin check", rows, "write_once")


if __name__ == "__main__":
    main()
