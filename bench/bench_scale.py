"""Scale: does the cost of get, update and listing stay flat from 1,000 to 1,000,000 records?

    python -m bench.bench_scale

Fills an SQLite store with N records (bulk-loaded straight into its table, since
a million single writes would only time the filling), then times ``get``, an
unthrottled ``update`` and ``recent(status="failed", limit=50)`` at each size.
The reference for each row is the same call at 1,000 records.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import jobstatus
from jobstatus._record import dumps, utc_now_iso
from jobstatus.stores import SQLiteStore

from ._harness import Row, alternate, report

SIZES = (1_000, 100_000, 1_000_000)


def fill(store: SQLiteStore, count: int) -> None:
    db = store._connections.get()
    now = time.time()
    rows = []
    for n in range(count):
        status = "failed" if n % 50 == 0 else "completed"
        stamp = now - (count - n) * 0.001
        record = {
            "status": status,
            "progress": n % 100,
            "total": 100,
            "updated_at": utc_now_iso(stamp),
        }
        rows.append((f"job-{n}", dumps(record), status, stamp, now + 3600))
        if len(rows) == 50_000:
            db.executemany(
                "INSERT INTO jobstatus (job_id, record, status, updated_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            rows.clear()
    db.executemany(
        "INSERT INTO jobstatus (job_id, record, status, updated_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        rows,
    )


def measure(folder: Path, count: int) -> dict[str, float]:
    store = SQLiteStore(folder / f"scale-{count}.db")
    store.read("warm-up")  # creates the schema
    fill(store, count)
    jobstatus.configure(store=store)
    middle = f"job-{count // 2}"
    status = jobstatus.get(middle)

    def get(n: int) -> None:
        for _ in range(n):
            jobstatus.get(middle)

    def update(n: int) -> None:
        for i in range(n):
            status.update(step=i)

    def listing(n: int) -> None:
        for _ in range(n):
            assert len(jobstatus.recent(status="failed", limit=10)) == 10

    result = alternate({"get": get, "update": update, "recent": listing}, n=300, rounds=3)
    size = os.path.getsize(store.path) + os.path.getsize(f"{store.path}-wal")
    result["bytes_per_record"] = size / count
    store.close()
    return result


def main() -> str:
    with tempfile.TemporaryDirectory() as folder:
        results = {count: measure(Path(folder), count) for count in SIZES}
    base = results[SIZES[0]]
    rows = []
    for count in SIZES[1:]:
        for key, label in (
            ("get", "`get`"),
            ("update", "`update`"),
            ("recent", "`recent(failed, 10)`"),
        ):
            rows.append(
                Row(
                    f"{label}, SQLite, {count:,} records",
                    results[count][key] * 1e6,
                    "same at 1,000",
                    base[key] * 1e6,
                    "us/op",
                    "flat (>= 0.8x)",
                    {"bytes_per_record": results[count]["bytes_per_record"]},
                )
            )
    return report("Scale: cost per call from 1,000 to 1,000,000 records", rows, "scale")


if __name__ == "__main__":
    main()
