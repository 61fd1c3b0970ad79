"""The dashboard at 1,000,000 records: does it load in under 300 ms?

    python -m bench.bench_dashboard [--records N] [--store sqlite|redis|postgres ...]

Each store is filled with N records shaped like real jobs (a task name, start and
end times, attempts; one in a thousand failed with its exception, some working
and queued), through the store's own write path in bulk (SQLite: its table's
upsert; Redis and PostgreSQL: ``bench/_bulk.py``). The endpoint
(``create_app(public=True, operator=...)``) runs under uvicorn in its own process;
the client is this process, on the same machine (2 cores).

Measured, each the median of 15 rounds (after a warm-up), wall time with one
keep-alive HTTP connection, requests the page sends together sent together:

- **first load**: what the dashboard fetches before it draws its rows: the page,
  its script and style sheet, then ``/counts`` and ``/jobs?limit=50`` at once;
- **failed view**: the operator's question, ``/counts`` and ``/jobs?status=failed``;
- **tenth page**: ``/jobs?limit=50`` after nine pages, by its cursor;
- **search by name**: ``/jobs?name=...&status=failed``;
- **in Chromium**: navigation to the first row drawn, when /usr/bin/chromium and
  playwright are there (the page's whole load, as a user sees it).

The reference of each row is the same measure on the same store holding 1,000
records (flat is the goal), and, for SQLite, the SQL the store runs for it issued
straight through ``sqlite3`` (the floor: no HTTP, no JSON, no Python above the
driver). A store that cannot count or search yet (Redis and PostgreSQL until
their indexes land) prints that and no row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from jobstatus._record import Change, dumps, parse_iso, utc_now_iso
from jobstatus.stores import SQLiteStore, store_from_url

from ._bulk import chunks, load_postgres, load_redis
from ._harness import Row, report

ROUNDS = 15
SMALL = 1_000
NAMES = (
    "reports.export",
    "mail.send",
    "images.thumbnail",
    "billing.charge",
    "search.reindex",
    "video.render",
    "import.file",
    "cleanup.sessions",
)
TARGET = "< 300 ms"


def jobs(count: int, ttl: float = 86_400) -> Iterator[tuple[str, Change]]:
    """``count`` records like real jobs', newest last, over the last hour."""
    now = time.time()
    for n in range(count):
        finished_at = now - 3600 * (count - n) / count
        started_at = finished_at - 0.5 - (n % 7)
        name = NAMES[n % len(NAMES)]
        fields: dict[str, Any] = {
            "name": name,
            "queued_at": utc_now_iso(started_at - 0.2),
            "started_at": utc_now_iso(started_at),
            "attempts": 1 + (n % 97 == 0),
            "progress": 100,
            "total": 100,
        }
        if n % 1000 == 0:
            fields["status"] = "failed"
            fields["exception"] = {"class": "ValueError", "message": f"row {n} has no date"}
        elif n % 5000 == 1:
            fields["status"] = "working"
            fields["progress"] = n % 100
            finished_at = now - 1  # a working job wrote just now
        elif n % 500 == 2:
            fields["status"] = "queued"
            fields.pop("started_at")
        else:
            fields["status"] = "completed"
        if fields["status"] in ("failed", "completed"):
            fields["finished_at"] = utc_now_iso(finished_at)
        fields["updated_at"] = utc_now_iso(finished_at)
        yield f"job-{n:07d}", Change(set=fields, ttl=ttl, finished_ttl=ttl)


def load_sqlite(store: SQLiteStore, writes: Iterator[tuple[str, Change]]) -> int:
    """Insert each record as the store's own upsert would store it; return the count."""
    store.read("warm-up")  # the schema
    db = store._connections.get()
    assert isinstance(db, sqlite3.Connection)
    count = 0
    now = time.time()
    columns = "job_id, record, status, updated_at, expires_at, parent, name"
    for chunk in chunks(writes, 50_000):
        rows = [
            (
                job_id,
                dumps(change.set),
                change.set["status"],
                parse_iso(change.set["updated_at"]),
                now + change.ttl,
                None,
                change.set["name"],
            )
            for job_id, change in chunk
        ]
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO jobstatus ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        count += len(rows)
    return count


def fill(url: str, count: int) -> None:
    store = store_from_url(url)
    try:
        if isinstance(store, SQLiteStore):
            load_sqlite(store, jobs(count))
        elif url.startswith("redis"):
            load_redis(store, jobs(count))  # type: ignore[arg-type]
        else:
            load_postgres(store, jobs(count))  # type: ignore[arg-type]
    finally:
        store.close()


# -- the server ------------------------------------------------------------------------


def serve(port: int, url: str) -> None:
    import uvicorn

    import jobstatus.web

    app = jobstatus.web.create_app(store=url, public=True, operator=lambda request: True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Server:
    """The endpoint in its own process, for the block."""

    def __init__(self, url: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = url

    def __enter__(self) -> Server:
        command = [sys.executable, "-m", "bench.bench_dashboard", "--serve", str(self.port)]
        self.process = subprocess.Popen([*command, self.url], cwd=Path(__file__).parent.parent)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the endpoint did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


# -- the measures ------------------------------------------------------------------------


def median_ms(measure: Callable[[], None]) -> float:
    measure()  # warm-up: connections, the page cache, SQLite's
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        measure()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def amedian_ms(measure: Callable[[], Awaitable[None]]) -> float:
    await measure()
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await measure()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def http_measures(base: str) -> dict[str, float] | str:
    """Each measure's median ms against the endpoint at ``base``, or why there is none."""

    async def run() -> dict[str, float] | str:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:

            async def together(*paths: str) -> None:
                answers = await asyncio.gather(*(client.get(path) for path in paths))
                for answer in answers:
                    answer.raise_for_status()

            counts = await client.get("/counts")
            if counts.status_code != 200:
                return f"/counts answers {counts.status_code}: {counts.text}"
            search = "/jobs?status=failed&name=mail.send&limit=50"
            if (await client.get(search)).status_code != 200:
                return "this store cannot search yet"
            cursor = None
            for _ in range(9):
                query = "/jobs?limit=50" + (f"&cursor={cursor}" if cursor else "")
                cursor = (await client.get(query)).json()["next"]
            tenth = f"/jobs?limit=50&cursor={cursor}"

            async def first_load() -> None:
                await together("/")
                await together("/static/jobstatus.js", "/static/jobstatus.css")
                await together("/counts", "/jobs?limit=50")

            return {
                "first load": await amedian_ms(first_load),
                "failed view": await amedian_ms(
                    lambda: together("/counts", "/jobs?status=failed&limit=50")
                ),
                "tenth page": await amedian_ms(lambda: together(tenth)),
                "search by name": await amedian_ms(lambda: together(search)),
            }

    return asyncio.run(run())


def browser_ms(base: str) -> dict[str, float]:
    """Median ms from navigation to the first row drawn, and to the counts drawn, in
    headless Chromium (nothing without /usr/bin/chromium and playwright)."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if not chromium.exists():
        return {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--headless", "--no-sandbox"], headless=True
        )
        page = browser.new_page()

        def until(selector: str) -> Callable[[], None]:
            def load() -> None:
                page.goto(base + "/", wait_until="commit")
                page.wait_for_selector(selector)

            return load

        try:
            return {
                "in Chromium, to the first row": median_ms(until("#jobs tbody tr")),
                "in Chromium, to the counts": median_ms(until('[data-count="total"]:not(:empty)')),
            }
        finally:
            browser.close()


def raw_sqlite_ms(path: Path) -> dict[str, float]:
    """The SQL the store runs for the failed view and the search, straight through sqlite3."""
    db = sqlite3.connect(path)
    now = time.time()

    def failed_view() -> None:
        db.execute(
            "SELECT status, count(*) FROM jobstatus INDEXED BY jobstatus_status_updated "
            "GROUP BY status"
        ).fetchall()
        db.execute(
            "SELECT status, count(*) FROM jobstatus INDEXED BY jobstatus_expires "
            "WHERE expires_at <= ? GROUP BY status",
            (now,),
        ).fetchall()
        db.execute(
            "SELECT count(*) FROM jobstatus WHERE status = 'working' AND updated_at < ? "
            "AND expires_at > ?",
            (now - 60, now),
        ).fetchall()
        db.execute(
            "SELECT job_id, record FROM jobstatus WHERE status = 'failed' AND expires_at > ? "
            "ORDER BY updated_at DESC, job_id DESC LIMIT 50",
            (now,),
        ).fetchall()

    def search() -> None:
        db.execute(
            "SELECT job_id, record FROM jobstatus WHERE expires_at > ? AND name = ? "
            "AND status = 'failed' ORDER BY updated_at DESC, job_id DESC LIMIT 50",
            (now, "mail.send"),
        ).fetchall()

    try:
        return {"failed view": median_ms(failed_view), "search by name": median_ms(search)}
    finally:
        db.close()


def measure(url: str) -> dict[str, float] | str:
    with Server(url) as server:
        found = http_measures(server.base)
        if isinstance(found, str):
            return found
        return {**found, **browser_ms(server.base)}


def store_urls(kind: str, folder: Path, size: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / f'dashboard-{size}.db'}"
    if kind == "redis":
        base = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        return f"{base}?prefix=bench-dashboard-{size}:"
    base = os.environ.get("JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
    return f"{base}?table=bench_dashboard_{size}"


def drop(url: str) -> None:
    store = store_from_url(url)
    try:
        if url.startswith("redis"):
            client = store._scripts().client  # type: ignore[attr-defined]
            match = store.prefix + "*"  # type: ignore[attr-defined]
            for keys in chunks(client.scan_iter(match=match, count=10_000), 10_000):
                client.unlink(*keys)
        elif url.startswith("postgresql"):
            store.drop()  # type: ignore[attr-defined]
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--store", action="append", choices=["sqlite", "redis", "postgres"])
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "STORE"))
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in args.store or ["sqlite"]:
            results: dict[int, dict[str, float] | str] = {}
            raw: dict[str, float] = {}
            for size in (SMALL, args.records):
                url = store_urls(kind, folder, size)
                started = time.monotonic()
                fill(url, size)
                print(f"{kind}: {size:,} records in {time.monotonic() - started:.0f} s", flush=True)
                try:
                    results[size] = measure(url)
                    if kind == "sqlite" and size == args.records:
                        raw = raw_sqlite_ms(folder / f"dashboard-{size}.db")
                finally:
                    drop(url)
            big, small = results[args.records], results[SMALL]
            if isinstance(big, str) or isinstance(small, str):
                print(f"{kind}: no rows: {big if isinstance(big, str) else small}")
                continue
            n = f"{args.records:,}"
            for what, ms in big.items():
                rows.append(
                    Row(
                        f"{kind}, {n} records: {what}",
                        ms,
                        "1,000 records",
                        small[what],
                        "ms",
                        TARGET,
                    )
                )
                if what in raw:
                    rows.append(
                        Row(
                            f"{kind}, {n} records: {what}",
                            ms,
                            "its SQL in sqlite3",
                            raw[what],
                            "ms",
                            TARGET,
                        )
                    )
    report(f"Dashboard at {args.records:,} records", rows, "dashboard")


if __name__ == "__main__":
    main()
