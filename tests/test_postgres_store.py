"""The PostgreSQL store beyond the contract: many processes, push, bounded time, outages."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobstatus
from jobstatus import ConfigurationError, Job, StoreError, WriteRefused
from jobstatus._record import Change
from jobstatus.stores import MemoryStore, Written
from jobstatus.stores.base import CancelPush

from . import _workers
from ._outage import job_through_outage
from ._own_servers import PostgresServer
from ._strategies import examples
from ._ticks import TRACED, as_memory_leaves_it, play_ticks
from .stores import POSTGRES_URL, namespace, require_service

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")
spawn = multiprocessing.get_context("spawn")

from jobstatus.stores import _postgres_sql as q  # noqa: E402
from jobstatus.stores.postgres import PostgresStore  # noqa: E402 - after the driver check


@pytest.fixture
def table() -> Iterator[str]:
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    name = f"jobstatus_t{namespace()}"
    yield name
    dropper = PostgresStore(POSTGRES_URL, table=name)
    dropper.drop()
    dropper.close()


@pytest.fixture
def store(table: str) -> Iterator[PostgresStore]:
    built = PostgresStore(POSTGRES_URL, table=table)
    jobstatus.configure(store=built)
    yield built
    built.close()


def _run_all(target, argument_lists: list[tuple], bound: float = 120) -> None:
    processes = [spawn.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    deadline = time.monotonic() + bound
    try:
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0))
            assert process.exitcode == 0
    finally:
        for process in processes:  # none may outlive the test (and write to a dropped table)
            if process.is_alive():
                process.kill()
                process.join()


# -- many writers ------------------------------------------------------------------


def test_eight_processes_of_2500_increments_leave_exactly_20000(store: PostgresStore) -> None:
    url = f"{POSTGRES_URL}?table={store.table}"
    start_at = time.time() + 1.5
    _run_all(_workers.increment, [(url, "counter", 2500, start_at) for _ in range(8)])
    assert jobstatus.get("counter").progress.current == 20_000


def test_two_processes_writing_different_keys_lose_nothing(store: PostgresStore) -> None:
    url = f"{POSTGRES_URL}?table={store.table}"
    start_at = time.time() + 1.5
    _run_all(_workers.write_keys, [(url, "shared", p, 400, start_at) for p in ("a", "b")])
    record = jobstatus.get("shared").to_dict()
    assert all(record[f"{p}{n}"] == n for p in ("a", "b") for n in range(400))


@pytest.mark.timeout(600)  # 20,000 writes that each take a group's lock: minutes under load
def test_eight_processes_of_2500_children_leave_their_group_exact(store: PostgresStore) -> None:
    url = f"{POSTGRES_URL}?table={store.table}"
    group = jobstatus.group(name="fan-out", group_id="big-group")
    start_at = time.time() + 1.5
    _run_all(
        _workers.group_children,
        [(url, group.job_id, p * 2500, 2500, start_at) for p in range(8)],
        bound=600,
    )
    failed = sum(1 for n in range(20_000) if n % 3 == 0)
    s = jobstatus.get(group.job_id)
    assert s["children"] == {
        "queued": 0,
        "working": 0,
        "completed": 20_000 - failed,
        "failed": failed,
        "cancelled": 0,
    }
    assert (s.progress.current, s.progress.total, s.status) == (20_000, 20_000, "failed")
    # Its own moves depend on the order children ran in (all finished ones completed
    # for a moment, say), but it was made queued and ends failed.
    assert (s.history[0]["status"], s.history[-1]["status"]) == ("queued", "failed")
    assert len(store.child_ids(group.job_id)) == 20_000
    counts = jobstatus.counts()
    assert (counts["completed"], counts["failed"], counts["working"]) == (
        20_000 - failed,
        failed + 1,
        0,
    )


def test_writers_at_every_level_of_nested_groups_neither_deadlock_nor_lose_counts(
    store: PostgresStore,
) -> None:
    """Children of four groups in one top group, from 8 threads, while other writes lock
    the groups themselves: every write locks child before ancestor, so none deadlocks."""
    from concurrent.futures import ThreadPoolExecutor

    top = jobstatus.group(name="top", group_id="top")
    middles = [jobstatus.group(name="mid", group_id=f"mid-{m}", parent=top) for m in range(4)]

    def children(t: int) -> None:
        for n in range(40):
            job = Job(f"leaf-{t}-{n}", parent=middles[(t + n) % 4].job_id)
            job.started()
            job.finished()

    def group_writes(t: int) -> None:
        for n in range(160):
            store.write(middles[n % 4].job_id, Change(set={"note": n}))
            store.write("top", Change(set={"note": n}))

    with ThreadPoolExecutor(max_workers=10) as pool:
        running = [pool.submit(children, t) for t in range(8)]
        running += [pool.submit(group_writes, t) for t in range(2)]
        for future in running:
            future.result()  # a deadlock would be a StoreError here
    for middle in middles:
        s = jobstatus.get(middle.job_id)
        assert s["children"]["completed"] == 80 and s.status == "completed"
    s = jobstatus.get("top")
    assert s["children"] == {"queued": 0, "working": 0, "completed": 4, "failed": 0,
                             "cancelled": 0}  # fmt: skip
    assert s.status == "completed" and s.progress.current == 4


def test_a_cancel_reaches_a_job_in_another_process_by_push(store: PostgresStore) -> None:
    url = f"{POSTGRES_URL}?table={store.table}"
    job = spawn.Process(target=_workers.wait_for_cancel, args=(url, "far-away", 60.0))
    job.start()
    deadline = time.monotonic() + 60
    while not jobstatus.get("far-away").get("ready") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobstatus.cancel("far-away", reason="from here") is True
    job.join(90)
    assert job.exitcode == 0  # it learned without writing, and raised Cancelled
    s = jobstatus.get("far-away")
    assert s.is_cancelled and s["cancel"]["reason"] == "from here"


def test_announced_cancels_reach_listeners_and_stop_ends_them(store: PostgresStore) -> None:
    heard: list[tuple[str, dict]] = []
    arrived = threading.Event()

    def deliver(job_id: str, request: dict) -> None:
        heard.append((job_id, request))
        arrived.set()

    stop = store.listen_for_cancels(deliver)
    asyncio.run(store.aannounce_cancel("j1", {"requested_at": "now", "reason": None}))
    assert arrived.wait(10)
    stop()
    assert heard == [("j1", {"requested_at": "now", "reason": None})]
    quiet = PostgresStore(POSTGRES_URL, table=store.table, notify=False)
    assert CancelPush.of(quiet) is None and CancelPush.of(store) is store
    quiet.close()


# -- schema --------------------------------------------------------------------------

FIRST_SCHEMA = (
    """CREATE TABLE {t} (
    job_id     text PRIMARY KEY,
    record     jsonb NOT NULL,
    status     text NOT NULL,
    updated_at double precision NOT NULL,
    expires_at double precision NOT NULL
)""",
    "CREATE INDEX {t}_status_updated ON {t} (status, updated_at)",
    "CREATE INDEX {t}_updated ON {t} (updated_at)",
    "CREATE INDEX {t}_expires ON {t} (expires_at)",
)


def _first_schema_row(conn, table: str, job_id: str, record: dict) -> None:
    now = time.time()
    status = record.get("status", "")
    conn.execute(
        f"INSERT INTO {table} VALUES (%s, %s::jsonb, %s, %s, %s)",
        (job_id, q.encode_record(record), status, now, now + 3600),
    )


def test_a_table_of_the_first_schema_is_migrated(table: str) -> None:
    """A table written before schema 2 gains its columns, counts and function."""
    stamp = "2026-01-01T00:00:00.000000+00:00"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for statement in FIRST_SCHEMA:
            conn.execute(statement.format(t=table))
        counts = {"queued": 0, "working": 1, "completed": 0, "failed": 0, "cancelled": 0}
        group = {"status": "working", "name": "batch", "children": counts, "total": 1}
        _first_schema_row(conn, table, "g-old", {**group, "progress": 0.0})
        child = {"status": "working", "name": "step", "parent": "g-old", "updated_at": stamp}
        _first_schema_row(conn, table, "c-old", child)
        _first_schema_row(conn, table, "done-old", {"status": "completed", "name": "step"})
    store = PostgresStore(POSTGRES_URL, table=table)
    jobstatus.configure(store=store)
    store.migrate()
    assert store.count_by_status() == {
        "queued": 0,
        "working": 2,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert store.child_ids("g-old") == ["c-old"]
    assert sorted(
        job_id for job_id, _ in store.find(status=None, limit=10, before=None, name="step")
    ) == ["c-old", "done-old"]
    store.write("c-old", Change(set={"status": "completed"}, events=(("completed", stamp),)))
    s = jobstatus.get("g-old")
    assert s.status == "completed" and s["children"]["completed"] == 1
    assert s.progress.current == 1
    assert store.count_by_status()["completed"] == 3
    with psycopg.connect(POSTGRES_URL) as conn:
        (marker,) = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (table,)
        ).fetchone()
    assert marker == q.SCHEMA_MARKER
    store.migrate()  # once up to date, again changes nothing
    assert store.count_by_status()["completed"] == 3
    store.close()
    jobstatus.configure(store=None)


# -- push ----------------------------------------------------------------------------

STEPS = [("queued", 0), ("working", 0), *(("working", n) for n in range(1, 8)), ("completed", 7)]


def _write_steps(job_id: str, listening: threading.Event, **extra: object) -> None:
    """Every state of a job, back to back, once the watcher has its first snapshot."""
    assert listening.wait(10)
    status = jobstatus.Job(job_id).status  # writes without reading
    status.update(status="working", force=True)
    for n in range(1, 8):
        status.update(progress=n, force=True, **extra)
    status.update(status="completed", force=True)


def _count_reads(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original_read, original_aread = store.read, store.aread

    def read(job_id: str):
        reads.append(job_id)
        return original_read(job_id)

    async def aread(job_id: str):
        reads.append(job_id)
        return await original_aread(job_id)

    monkeypatch.setattr(store, "read", read)
    monkeypatch.setattr(store, "aread", aread)
    return reads


def test_a_watcher_sees_every_state_in_order_without_polling(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobstatus.get("pushed").update(status="queued", progress=0)
    reads = _count_reads(store, monkeypatch)
    listening = threading.Event()
    writer = threading.Thread(target=_write_steps, args=("pushed", listening))
    writer.start()
    seen = []
    for snapshot in jobstatus.get("pushed").watch(timeout=20):
        seen.append((snapshot.status, snapshot.progress.current))
        listening.set()
    writer.join()
    assert seen == STEPS
    assert reads == ["pushed", "pushed"]  # get() and watch()'s first snapshot; then pushes


def test_an_async_watcher_sees_every_state_in_order_without_polling(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobstatus.get("apushed").update(status="queued", progress=0)
    reads = _count_reads(store, monkeypatch)
    listening = threading.Event()

    async def watch() -> list[tuple]:
        seen = []
        status = await jobstatus.aget("apushed")
        async for snapshot in status.awatch(timeout=20):
            seen.append((snapshot.status, snapshot.progress.current))
            listening.set()
        return seen

    writer = threading.Thread(target=_write_steps, args=("apushed", listening))
    writer.start()
    seen = asyncio.run(watch())
    writer.join()
    assert seen == STEPS
    assert reads == ["apushed", "apushed"]  # aget, then awatch's first snapshot


def test_records_too_large_to_push_are_read_instead(store: PostgresStore) -> None:
    jobstatus.get("big").update(status="queued", progress=0)
    listening = threading.Event()
    writer = threading.Thread(
        target=_write_steps, args=("big", listening), kwargs={"blob": "x" * 10_000}
    )
    writer.start()
    seen = []
    for snapshot in jobstatus.get("big").watch(timeout=20):
        seen.append(snapshot.status)
        listening.set()
    writer.join()
    assert seen[0] == "queued" and seen[-1] == "completed"
    assert jobstatus.get("big")["blob"] == "x" * 10_000


def test_watchers_of_other_jobs_are_not_woken_with_their_records(store: PostgresStore) -> None:
    jobstatus.get("mine").update(status="working")
    with store.subscribe("mine") as subscription:
        jobstatus.get("theirs").update(status="working", force=True)
        assert subscription.wait(0.3) is None
        jobstatus.get("mine").update(step="A")
        pushed = subscription.wait(5)
    assert pushed is not None and pushed[-1]["step"] == "A"


# -- options, clients, schema ----------------------------------------------------------


def test_url_options_and_bad_tables(table: str) -> None:
    store = jobstatus.store_from_url(
        f"postgres://postgres@127.0.0.1:5432/test?table={table}&timeout=2&notify=false"
        "&synchronous_commit=on&max_size=3"
    )
    assert isinstance(store, PostgresStore)
    assert (store.table, store.timeout, store.notify) == (table, 2.0, False)
    assert store.synchronous_commit is True
    store.write("opt", Change(set={"a": 1}))
    assert store.read("opt") == {"a": 1}
    store.close()
    for bad in ("bad name", "1table", 'x"; drop table y; --', "t" * 49):
        with pytest.raises(ConfigurationError, match="table"):
            PostgresStore(POSTGRES_URL, table=bad)
    with pytest.raises(ConfigurationError, match="timeout"):
        PostgresStore(POSTGRES_URL, timeout=0)


def test_migrate_creates_the_table_and_indexes(table: str) -> None:
    store = PostgresStore(POSTGRES_URL, table=table)
    store.migrate()
    store.migrate()  # twice is fine
    with psycopg.connect(POSTGRES_URL) as conn:
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
            )
        }
    assert {
        f"{table}_status_updated",
        f"{table}_updated",
        f"{table}_expires",
        f"{table}_parent",
        f"{table}_name_updated",
    } <= indexes
    store.close()


def test_jobstatus_migrate_creates_the_table(table: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobstatus", "migrate", "--store", f"{POSTGRES_URL}?table={table}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"(table {table}) is ready" in done.stdout
    with psycopg.connect(POSTGRES_URL) as conn:
        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    assert found == (True,)


def test_a_store_without_notify_does_not_claim_push(table: str) -> None:
    from jobstatus.stores.base import Push
    from jobstatus.web.hub import Hub

    quiet = PostgresStore(POSTGRES_URL, table=table, notify=False)
    pushing = PostgresStore(POSTGRES_URL, table=table)
    assert not quiet.supports(Push) and Push.of(quiet) is None and not quiet.pushes
    assert pushing.supports(Push) and Push.of(pushing) is pushing
    # The web app's hub follows pushes only where the store pushes.
    assert Hub(quiet, push_jobs=32).push_jobs == 0
    assert Hub(pushing, push_jobs=32).push_jobs == 32
    with quiet.subscribe("polled") as subscription:
        assert type(subscription).__name__ == "PollingSubscription"
    quiet.close()
    pushing.close()


def test_a_locked_row_fails_within_the_timeout(table: str) -> None:
    store = PostgresStore(POSTGRES_URL, table=table, timeout=0.5)
    store.write("locked", Change(set={"a": 1}))
    with psycopg.connect(POSTGRES_URL) as blocker:
        blocker.execute(f"SELECT 1 FROM {table} WHERE job_id = 'locked' FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(StoreError, match="timeout"):
            store.write("locked", Change(set={"a": 2}))
        assert time.monotonic() - started < 3
    store.write("locked", Change(set={"a": 3}))
    assert store.read("locked") == {"a": 3}
    store.close()


def test_ready_pools_and_connections_work(table: str) -> None:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    with ConnectionPool(POSTGRES_URL, min_size=1, max_size=2, open=True) as pool:
        jobstatus.configure(store=pool)
        jobstatus.get("pooled").update(table_check=1)
        store = PostgresStore(client=pool, table=table)
        store.write("pooled", Change(set={"via": "pool"}, incr={"n": 1}))
        assert store.read("pooled") == {"via": "pool", "n": 1}
    with psycopg.connect(POSTGRES_URL) as conn:  # not autocommit: the store commits
        store = PostgresStore(client=conn, table=table)
        store.write("pooled", Change(incr={"n": 1}))
        assert asyncio.run(store.aread("pooled")) == {"via": "pool", "n": 2}

    async def with_async_pool() -> dict | None:
        async with AsyncConnectionPool(POSTGRES_URL, min_size=1, open=False) as apool:
            astore = PostgresStore(client=apool, table=table)
            await astore.awrite("pooled", Change(incr={"n": 1}))
            record = await astore.aread("pooled")
            assert astore.read("pooled") == record  # the sync side opens its own connection
            astore.close()
            return record

    assert asyncio.run(with_async_pool()) == {"via": "pool", "n": 3}
    jobstatus.configure(store=None)
    PostgresStore(POSTGRES_URL, table="jobstatus").delete("pooled")


def test_a_given_async_connection_serves_one_call_at_a_time(table: str) -> None:
    """Calls on one given AsyncConnection take turns, as they do on a given Connection.

    Outside autocommit mode a call is its statements, then a commit or a
    rollback: the rollback of a write the server refused must not undo another
    task's write that was not committed yet.
    """

    async def main() -> tuple[object, dict | None]:
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
            store = PostgresStore(client=conn, table=table)
            await store.awrite("huge", Change(set={"n": 1e308}))
            kept, refused = await asyncio.gather(
                store.awrite("kept", Change(set={"a": 1})),
                store.awrite("huge", Change(incr={"n": 1e308})),  # a sum the server refuses
                return_exceptions=True,
            )
            assert kept == Written(created=True)
            return refused, await store.aread("kept")

    refused, kept = asyncio.run(main())
    assert isinstance(refused, WriteRefused)
    assert kept == {"a": 1}
    assert PostgresStore(POSTGRES_URL, table=table).read("kept") == {"a": 1}


def test_expired_rows_are_purged(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "PURGE_ALL_BATCH", 7)  # purge() goes in batches: 7 + 7 + 6
    now = [time.time()]
    store = PostgresStore(POSTGRES_URL, table=table, clock=lambda: now[0])
    for n in range(20):
        store.write(f"old-{n}", Change(set={"n": n}, ttl=10, finished_ttl=10))
    store.write("fresh", Change(set={"n": 1}, ttl=100, finished_ttl=100))
    now[0] += 50
    assert store.read_many(["old-0", "fresh"]) == [None, {"n": 1}]
    assert store.purge() == 20
    store.close()


def test_writes_purge_expired_rows_now_and_then(table: str) -> None:
    now = [time.time()]
    store = PostgresStore(POSTGRES_URL, table=table, clock=lambda: now[0])
    for n in range(30):
        store.write(f"old-{n}", Change(set={"n": n}, ttl=10, finished_ttl=10))
    now[0] += 50
    for _ in range(500):  # PURGE_EVERY writes of this process
        store.write("busy", Change(incr={"n": 1}))
    with psycopg.connect(POSTGRES_URL) as conn:
        (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert rows == 1 and store.read("busy") == {"n": 500}
    store.close()


# -- outage ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


def test_a_job_outlives_a_server_outage(
    own_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 1.0
    store = PostgresStore(own_server.url, timeout=timeout)
    jobstatus.configure(store=store, on_store_error="warn")
    outage = job_through_outage(own_server, timeout)
    assert outage.result == "done"
    assert outage.read_while_down < timeout + 2
    warnings = [r for r in caplog.records if "could not write the status" in r.getMessage()]
    assert 1 <= len(warnings) < 10  # rate-limited: one warning for many failed writes
    assert outage.slowest_write < 2 * timeout + 2  # no write hung past its timeout
    final = jobstatus.get(outage.job_id)
    assert final.is_completed
    assert final["step"] == 19 and final.progress.current == 20
    store.close()
    jobstatus.configure(store=None)


def test_reads_fail_rather_than_look_empty_when_the_server_is_down(
    own_server: PostgresServer,
) -> None:
    store = PostgresStore(own_server.url, timeout=1, table="down")
    store.write("seen", Change(set={"a": 1}))
    own_server.stop()
    try:
        for call in (
            lambda: store.read("seen"),
            lambda: store.read_many(["seen"]),
            lambda: jobstatus.recent(store=store),
        ):
            with pytest.raises(StoreError):
                call()
    finally:
        own_server.start()
    assert store.read("seen") == {"a": 1}  # a stale pooled connection is replaced at once
    store.drop()
    store.close()
    logging.getLogger("jobstatus").handlers.clear()


def test_the_docs_example_runs(tmp_path) -> None:
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "stores.md").read_text()
    section = doc[doc.index("## PostgreSQL") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    script = tmp_path / "postgres_doc.py"
    script.write_text(
        "\n".join(blocks).replace("postgresql://postgres@localhost:5432/test", POSTGRES_URL)
    )
    try:
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60
        )
    finally:
        dropper = PostgresStore(POSTGRES_URL, table="docs_example")
        dropper.drop()
        dropper.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["completed", "2", "b.png", "True"]


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'jobstatus\[postgres\]'"):
        jobstatus.store_from_url(POSTGRES_URL)


def test_messages_hide_the_password() -> None:
    store = PostgresStore("postgresql://app:s3cret@127.0.0.1:1/db", timeout=0.5)
    assert "s3cret" not in store.describe()
    with pytest.raises(StoreError) as raised:
        store.read("x")
    assert "s3cret" not in str(raised.value)


def test_a_childs_progress_tick_moves_its_top_group_in_one_update(store: PostgresStore) -> None:
    """As on SQLite: a tick on a group without a parent is one UPDATE of the group's
    row, with no read of it first and its counts not rebuilt, and leaves the record
    the memory store's merge leaves. The statements the write function runs are
    traced with auto_explain, which logs each one it plans."""
    notes: list[str] = []

    def on_notice(diagnostic: Any) -> None:
        notes.append(diagnostic.message_primary or "")

    @contextmanager
    def traced() -> Iterator[None]:
        def start(conn: Any) -> None:
            conn.add_notice_handler(on_notice)
            for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                            "SET auto_explain.log_nested_statements = on",
                            "SET client_min_messages = log"):  # fmt: skip
                conn.execute(setting)

        def stop(conn: Any) -> None:
            conn.execute("RESET client_min_messages")
            conn.remove_notice_handler(on_notice)

        store._call("trace", start)  # one thread: the pool hands back the same connection
        yield
        store._call("trace", stop)

    in_sql = play_ticks(store, traced)
    assert in_sql == as_memory_leaves_it()
    assert in_sql["status"] == "working" and in_sql["total"] == 5
    statements = [note.partition("Query Text: ")[2].lstrip() for note in notes]
    writes = [sql for sql in statements if sql.startswith("SELECT applied")]
    on_the_group = [sql for sql in statements if "v_parent" in sql and "pg_notify" not in sql]
    assert len(writes) == TRACED
    assert len(on_the_group) == TRACED
    assert all(sql.startswith("UPDATE") for sql in on_the_group)


# -- the same semantics as the Python stores -------------------------------------------

_STAMPS = [f"2026-01-01T00:00:0{n}.000000+00:00" for n in range(10)]
_ZERO = {"queued": 0, "working": 0, "completed": 0, "failed": 0, "cancelled": 0}
_KEYS = ("status", "progress", "total", "parent", "attempts", "cancel", "children", "step")
_VALUES = {
    "status": st.sampled_from(["queued", "working", "completed", "failed", "cancelled"]),
    "progress": st.integers(0, 20) | st.floats(0, 20, allow_nan=False),
    "total": st.integers(0, 20) | st.floats(0, 20, allow_nan=False) | st.none(),
    "parent": st.sampled_from(["g", "h"]) | st.none(),
    "attempts": st.integers(0, 3),
    "cancel": st.just({"requested_at": _STAMPS[0], "reason": "r"}) | st.none(),
    "children": st.just(_ZERO) | st.none(),
    "step": st.text(max_size=3),
}


@st.composite
def _changes(draw: st.DrawFn) -> tuple[str, Change]:
    keys = draw(st.lists(st.sampled_from(_KEYS), unique=True, max_size=4))
    fields = {key: draw(_VALUES[key]) for key in keys}
    fields["updated_at"] = draw(st.sampled_from(_STAMPS))
    incr = draw(st.dictionaries(st.sampled_from(["progress", "n"]), st.integers(-2, 3)
                                | st.floats(-2, 3, allow_nan=False), max_size=2))  # fmt: skip
    incr = {key: amount for key, amount in incr.items() if key not in fields}
    events = draw(st.lists(st.tuples(_VALUES["status"], st.sampled_from(_STAMPS)), max_size=2))
    change = Change(
        set=fields,
        incr=incr,
        unset=tuple(draw(st.lists(st.sampled_from(_KEYS), unique=True, max_size=2))),
        guard=draw(st.sampled_from([None, None, "unfinished", "not_cancelled", "absent"])),
        events=tuple(events),
        history_limit=draw(st.integers(0, 3)),
        origin=draw(st.none() | st.tuples(st.sampled_from(["w1", "w2"]), st.integers(1, 4))),
    )
    return draw(st.sampled_from(["g", "h", "a", "b"])), change


_example = [0]


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(_changes(), min_size=1, max_size=12))
def test_any_writes_leave_what_the_memory_store_leaves(
    store: PostgresStore, writes: list[tuple[str, Change]]
) -> None:
    """The function and the Python merge (memory's write_through) agree on every
    record and every answer: guards, origins, history, the roll-up, its nesting."""
    _example[0] += 1
    prefix = f"p{_example[0]}-"
    memory = MemoryStore()

    def local(change: Change) -> Change:
        parent = change.set.get("parent")
        if isinstance(parent, str):
            change.set["parent"] = prefix + parent
        return change

    groups = [("h", {}), ("g", {"parent": "h"})]  # g in h: two levels to roll up
    fresh = {"status": "queued", "children": _ZERO, "updated_at": _STAMPS[0]}
    made = [(job_id, Change(set={**fresh, **more})) for job_id, more in groups]
    for job_id, change in [*made, *writes]:
        change = local(change)
        expected = memory.write(prefix + job_id, change)
        assert store.write(prefix + job_id, change) == expected
        for name in ("g", "h", "a", "b"):
            assert store.read(prefix + name) == memory.read(prefix + name), name
