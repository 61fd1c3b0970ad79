"""Core benchmarks: a throttled tick against tqdm; SQLite writes and batches against sqlite3.

python -m bench.bench_core
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

import jobstatus
from jobstatus import Batch, Job
from jobstatus._record import dumps
from jobstatus.stores import SQLiteStore

from ._harness import Row, alternate, report


def tick_rows() -> list[Row]:
    import io

    from tqdm import tqdm

    jobstatus.configure(store="memory://", throttle_interval=0.5)
    job = Job("bench-tick")
    job.started()
    increment = job.status.progress.increment
    bar = tqdm(total=None, file=io.StringIO(), mininterval=0.5)

    def ours(n: int) -> None:
        for _ in range(n):
            increment()

    def with_tqdm(n: int) -> None:
        for _ in range(n):
            bar.update(1)

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    medians = alternate({"ours": ours, "tqdm": with_tqdm, "empty": empty}, n=200_000, rounds=7)
    job.finished()
    bar.close()
    ns = {name: value * 1e9 for name, value in medians.items()}
    return [
        Row(
            "throttled `progress.increment()`",
            ns["ours"],
            "`tqdm.update(1)`",
            ns["tqdm"],
            "ns/op",
            "<= 0.5x tqdm's time (>= 2x)",
            {"empty_loop_ns": ns["empty"]},
        ),
    ]


def sqlite_rows(folder: Path) -> list[Row]:
    path = folder / "bench.db"
    store = SQLiteStore(path)
    jobstatus.configure(store=store, throttle_interval=0)
    status = jobstatus.get("bench-write")
    status.update(step="start")

    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE IF NOT EXISTS raw (id TEXT PRIMARY KEY, record TEXT)")
    fields = {"step": "B", "rows_done": 1, "note": "writing"}

    def ours(n: int) -> None:
        for i in range(n):
            status.update(fields, rows_done=i)

    def raw_upsert(n: int) -> None:
        for i in range(n):
            record = dumps({**fields, "rows_done": i})
            raw.execute(
                "INSERT INTO raw VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                ("bench-write", record),
            )

    # The same upsert into a table with jobstatus's schema (its two indexes, for
    # listing and expiry, add a page to every commit): the cost of the schema alone.
    from jobstatus.stores.sqlite import SCHEMA

    raw.executescript(SCHEMA.replace("jobstatus", "raw_schema"))

    def raw_same_schema(n: int) -> None:
        for i in range(n):
            now = time.time()
            raw.execute(
                "INSERT INTO raw_schema VALUES (?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT (job_id) "
                "DO UPDATE SET record = excluded.record, status = excluded.status, "
                "updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                ("bench-write", dumps({**fields, "rows_done": i}), "working", now, now + 3600),
            )

    # The reference: one statement that merges the change into the stored
    # JSON (json_patch), as a store must to keep the other writers' keys.
    raw.execute("CREATE TABLE IF NOT EXISTS raw_patch (id TEXT PRIMARY KEY, record TEXT)")

    def raw_patch(n: int) -> None:
        for i in range(n):
            record = dumps({**fields, "rows_done": i})
            raw.execute(
                "INSERT INTO raw_patch VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
                "SET record = json_patch(record, excluded.record)",
                ("bench-write", record),
            )

    write = alternate(
        {"ours": ours, "raw": raw_upsert, "patch": raw_patch, "schema": raw_same_schema},
        n=2000,
        rounds=5,
    )

    ids = [f"batch-{n}" for n in range(10_000)]
    for n, job_id in enumerate(ids):
        if n % 2 == 0:
            Job(job_id).started()
    # The raw side reads the same records' text (a started job's, about 250 bytes):
    # a record of its own, {"status": "working"}, parsed in half the time.
    raw.execute(
        "INSERT OR REPLACE INTO raw SELECT job_id, record FROM jobstatus "
        "WHERE job_id IN (SELECT value FROM json_each(?))",
        (dumps(ids),),
    )

    def ours_batch(n: int) -> None:
        for _ in range(n):
            assert sum(Batch(ids, store=store).counts.values()) == len(ids)

    def raw_batch(n: int) -> None:
        for _ in range(n):
            found = {}
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                marks = ",".join("?" * len(chunk))
                for job_id, record in raw.execute(
                    f"SELECT id, record FROM raw WHERE id IN ({marks})", chunk
                ):
                    found[job_id] = json.loads(record)
            [found.get(job_id) for job_id in ids]

    batch = alternate({"ours": ours_batch, "raw": raw_batch}, n=3, rounds=5)
    raw.close()
    us = 1e6
    return [
        Row(
            "unthrottled write, SQLite",
            write["ours"] * us,
            "raw upsert merging with `json_patch` in one statement",
            write["patch"] * us,
            "us/op",
            ">= 0.7x",
        ),
        Row(
            "unthrottled write, SQLite",
            write["ours"] * us,
            "raw sqlite3 upsert (replaces the record)",
            write["raw"] * us,
            "us/op",
            "",
        ),
        Row(
            "unthrottled write, SQLite",
            write["ours"] * us,
            "raw upsert, same schema and indexes",
            write["schema"] * us,
            "us/op",
            "",
        ),
        Row(
            "`Batch` of 10,000, SQLite",
            batch["ours"] * 1e3,
            "raw `SELECT ... IN` + json",
            batch["raw"] * 1e3,
            "ms",
            "within 1.5x (>= 0.67x)",
        ),
    ]


def main() -> str:
    with tempfile.TemporaryDirectory() as folder:
        rows = tick_rows() + sqlite_rows(Path(folder))
    return report("Core: ticks, SQLite writes and batches", rows, "core")


if __name__ == "__main__":
    main()
