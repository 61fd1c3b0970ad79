"""PostgreSQL and memcached: jobstatus against raw psycopg and pymemcache; NOTIFY push latency.

python -m bench.bench_postgres_memcached
(needs PostgreSQL at JOBSTATUS_TEST_POSTGRES_URL and memcached at JOBSTATUS_TEST_MEMCACHED_URL)
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import psycopg
from pymemcache.client.base import Client

import jobstatus
from jobstatus import Job
from jobstatus._record import Change, dumps
from jobstatus.stores._postgres_sql import session_options
from jobstatus.stores.memcached import MemcachedStore
from jobstatus.stores.postgres import PostgresStore

from ._harness import Row, alternate, percentile, report

POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MEMCACHED_URL = os.environ.get("JOBSTATUS_TEST_MEMCACHED_URL", "memcached://127.0.0.1:11211")
NAME = f"bench{uuid.uuid4().hex[:8]}"
OPS = 2_000
PUSHES = 1_000
US = 1e6


def _update_and_get(job_id: str):  # type: ignore[no-untyped-def]
    job = Job(job_id)
    job.started()
    status = job.status

    def ours_write(n: int) -> None:
        for i in range(n):
            status.update(step="load", progress=i)

    def ours_read(n: int) -> None:
        for _ in range(n):
            jobstatus.get(job_id)

    return job, ours_write, ours_read


def postgres_rows(store: PostgresStore) -> list[Row]:
    jobstatus.configure(store=store, throttle_interval=0)
    job, ours_write, ours_read = _update_and_get("bench-one")
    raw_table = f"{NAME}_raw"
    # The same session settings as the store's own connections, so only the SQL differs.
    raw = psycopg.connect(POSTGRES_URL, autocommit=True, options=session_options(5, False))
    raw.execute(f"CREATE TABLE {raw_table} (job_id text PRIMARY KEY, record jsonb NOT NULL)")
    upsert = (
        f"INSERT INTO {raw_table} AS t (job_id, record) VALUES (%s, %s::jsonb) "
        "ON CONFLICT (job_id) DO UPDATE SET record = t.record || excluded.record"
    )
    select = f"SELECT record FROM {raw_table} WHERE job_id = %s"
    # The same upsert into a table laid out like the store's: a status column,
    # expiry, and the listing and purge indexes that every write must update.
    indexed = f"{NAME}_indexed"
    raw.execute(
        f"CREATE TABLE {indexed} (job_id text PRIMARY KEY, record jsonb NOT NULL, "
        "status text NOT NULL, updated_at float8 NOT NULL, expires_at float8 NOT NULL)"
    )
    for columns in ("status, updated_at", "updated_at", "expires_at"):
        raw.execute(f"CREATE INDEX ON {indexed} ({columns})")
    indexed_upsert = (
        f"INSERT INTO {indexed} AS t VALUES (%s, %s::jsonb, 'working', %s, %s) "
        "ON CONFLICT (job_id) DO UPDATE SET record = t.record || excluded.record, "
        "status = excluded.status, updated_at = excluded.updated_at, "
        "expires_at = excluded.expires_at"
    )

    def raw_write(n: int) -> None:
        for i in range(n):
            raw.execute(upsert, ("one", dumps({"step": "load", "progress": i})))

    def raw_indexed_write(n: int) -> None:
        for i in range(n):
            now = time.time()
            record = dumps({"step": "load", "progress": i})
            raw.execute(indexed_upsert, ("one", record, now, now + 3600))

    def raw_read(n: int) -> None:
        for _ in range(n):
            raw.execute(select, ("one",)).fetchone()

    sides = {"ours": ours_write, "raw": raw_write, "indexed": raw_indexed_write}
    writes = alternate(sides, OPS)
    reads = alternate({"ours": ours_read, "raw": raw_read}, OPS)
    job.finished()
    raw.execute(f"DROP TABLE {raw_table}")
    raw.execute(f"DROP TABLE {indexed}")
    raw.close()
    return [
        Row(
            "PostgreSQL: unthrottled `status.update(step=..., progress=...)`",
            writes["ours"] * US,
            "psycopg upsert of the same JSON (jsonb merge)",
            writes["raw"] * US,
            "us/op",
        ),
        Row(
            "the same update",
            writes["ours"] * US,
            "the same psycopg upsert into a table with jobstatus's columns and indexes",
            writes["indexed"] * US,
            "us/op",
        ),
        Row(
            "PostgreSQL: `jobstatus.get(id)`",
            reads["ours"] * US,
            "psycopg `SELECT record ... WHERE job_id = %s`",
            reads["raw"] * US,
            "us/op",
        ),
    ]


def memcached_rows(store: MemcachedStore) -> list[Row]:
    jobstatus.configure(store=store, throttle_interval=0)
    job, ours_write, ours_read = _update_and_get("bench-one")
    host, port = MEMCACHED_URL.removeprefix("memcached://").split(",")[0].split(":")
    raw = Client((host, int(port)), no_delay=True, default_noreply=False)
    key = f"{NAME}:raw"

    def raw_write(n: int) -> None:
        for i in range(n):
            raw.set(key, dumps({"step": "load", "progress": i}).encode(), expire=3600)

    def raw_read(n: int) -> None:
        for _ in range(n):
            raw.get(key)

    def raw_gets_cas(n: int) -> None:  # the floor of an atomic merge: two round trips
        for i in range(n):
            _, token = raw.gets(key)
            raw.cas(key, dumps({"step": "load", "progress": i}).encode(), token, expire=3600)

    writes = alternate({"ours": ours_write, "raw": raw_write, "cas": raw_gets_cas}, OPS)
    reads = alternate({"ours": ours_read, "raw": raw_read}, OPS)
    job.finished()
    job.status.delete()
    raw.delete(key)
    raw.close()
    return [
        Row(
            "memcached: unthrottled `status.update(...)` (`gets` + `cas`)",
            writes["ours"] * US,
            "pymemcache `set` of the same JSON (one round trip, no merge)",
            writes["raw"] * US,
            "us/op",
            ">= 0.6x",
        ),
        Row(
            "memcached: the same update",
            writes["ours"] * US,
            "the floor of a merge: pymemcache `gets` + `cas` of the same JSON",
            writes["cas"] * US,
            "us/op",
        ),
        Row(
            "memcached: `jobstatus.get(id)`",
            reads["ours"] * US,
            "pymemcache `get`",
            reads["raw"] * US,
            "us/op",
        ),
    ]


def push_rows(store: PostgresStore) -> list[Row]:
    ours = _push_latencies(store)
    reference = _raw_notify_latencies()
    return [
        Row(
            f"PostgreSQL push latency p{pct}, write to watcher",
            percentile(ours, pct) * 1e3,
            f"raw `NOTIFY` to `LISTEN` p{pct}",
            percentile(reference, pct) * 1e3,
            "ms",
        )
        for pct in (50, 99)
    ]


def _push_latencies(store: PostgresStore) -> list[float]:
    latencies: list[float] = []
    with store.subscribe("bench-push") as subscription:

        def watcher() -> None:
            deadline = time.monotonic() + 30
            while len(latencies) < PUSHES and time.monotonic() < deadline:
                for record in subscription.wait(5) or []:
                    latencies.append(time.perf_counter() - record["sent"])

        thread = threading.Thread(target=watcher)
        thread.start()
        for _ in range(PUSHES):
            store.write("bench-push", Change(set={"sent": time.perf_counter()}))
            time.sleep(0.0005)
        thread.join()
    return latencies


def _raw_notify_latencies() -> list[float]:
    channel = f"{NAME}_channel"
    listener = psycopg.connect(POSTGRES_URL, autocommit=True)
    listener.execute(f"LISTEN {channel}")
    sender = psycopg.connect(POSTGRES_URL, autocommit=True)
    latencies: list[float] = []

    def watcher() -> None:
        deadline = time.monotonic() + 30
        while len(latencies) < PUSHES and time.monotonic() < deadline:
            for notice in listener.notifies(timeout=1):
                latencies.append(time.perf_counter() - float(notice.payload))
                if len(latencies) >= PUSHES:
                    return

    thread = threading.Thread(target=watcher)
    thread.start()
    for _ in range(PUSHES):
        sender.execute("SELECT pg_notify(%s, %s)", (channel, repr(time.perf_counter())))
        time.sleep(0.0005)
    thread.join()
    listener.close()
    sender.close()
    return latencies


def main() -> None:
    postgres = PostgresStore(POSTGRES_URL, table=f"{NAME}_status")
    memcached = MemcachedStore.from_url(MEMCACHED_URL, prefix=f"{NAME}:")
    try:
        rows = postgres_rows(postgres) + push_rows(postgres) + memcached_rows(memcached)
    finally:
        postgres.drop()
        postgres.close()
        memcached.close()
    report("PostgreSQL and memcached", rows, "postgres_memcached")


if __name__ == "__main__":
    main()
