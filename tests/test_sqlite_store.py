"""What only the SQLite store must get right: files, locks, purging."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import jobstatus
from jobstatus import Job, StoreError, WriteRefused
from jobstatus._record import Change
from jobstatus.stores import SQLiteStore
from jobstatus.stores import sqlite as sqlite_module

from . import _workers
from ._refusals import job_with_a_refused_write
from ._ticks import TRACED, as_memory_leaves_it, play_ticks
from .stores import FakeClock

pytestmark = pytest.mark.sqlite


def test_wal_mode_and_private_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "deep" / "er" / "s.db")
    jobstatus.configure(store=store)
    jobstatus.get("a")["x"] = 1
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert (store.path.stat().st_mode & 0o777) == 0o600


def test_a_corrupt_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    jobstatus.configure(store=f"sqlite:///{path}")
    with pytest.raises(StoreError, match=str(path)) as info:
        jobstatus.get("a")
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(StoreError, match="corrupt.db"):
        jobstatus.get("a")["x"] = 1


def test_a_job_on_a_broken_store_completes_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 1000)
    jobstatus.configure(store=f"sqlite:///{path}")

    @jobstatus.track
    def job() -> str:
        for _ in range(50):
            jobstatus.current()["step"] = "x"
        return "done"

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        assert job() == "done"
    warnings = [r for r in caplog.records if "could not write" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: 52 failed writes, one warning
    assert str(path) in warnings[0].getMessage()


def test_on_store_error_raise(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 1000)
    jobstatus.configure(store=f"sqlite:///{path}", on_store_error="raise")

    @jobstatus.track
    def job() -> None:
        pass

    with pytest.raises(StoreError):
        job()


def test_a_held_lock_times_out_as_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, timeout=0.3)
    jobstatus.configure(store=store)
    jobstatus.get("a")["x"] = 1
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            jobstatus.get("a")["x"] = 2
        assert time.monotonic() - started < 3
        assert jobstatus.get("a")["x"] == 1  # readers are not blocked by a writer (WAL)
    finally:
        other.execute("ROLLBACK")
    jobstatus.get("a")["x"] = 3
    assert jobstatus.get("a")["x"] == 3


def test_an_async_job_does_not_block_its_loop_while_the_store_waits(tmp_path: Path) -> None:
    path = tmp_path / "slow.db"
    jobstatus.configure(store=SQLiteStore(path, timeout=5))
    jobstatus.get("warm")["x"] = 1
    other = sqlite3.connect(path, isolation_level=None)

    @jobstatus.track
    async def job() -> str:
        jobstatus.current()["step"] = "waits for the lock"
        await jobstatus.current().aflush()
        return jobstatus.current().job_id

    async def main() -> tuple[str, int]:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.5, other.execute, "ROLLBACK")
        job_id = await job()
        beat.cancel()
        return job_id, ticks

    job_id, ticks = asyncio.run(main())
    assert ticks >= 10  # the loop kept running while writes waited for the lock
    assert jobstatus.get(job_id)["step"] == "waits for the lock"


def test_expired_rows_are_purged_by_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "purge.db", clock=clock)
    for n in range(100):
        store.write(f"old-{n}", Change(set={"n": n}, ttl=10, finished_ttl=10))
    clock.advance(11)
    for n in range(sqlite_module.PURGE_EVERY):
        store.write("new", Change(set={"n": n}, ttl=10, finished_ttl=10))
    rows = sqlite3.connect(store.path).execute("SELECT count(*) FROM jobstatus").fetchone()[0]
    assert rows == 1
    assert store.purge() == 0


def test_other_records_survive_a_failed_write(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    jobstatus.configure(store=store)
    jobstatus.get("keep")["x"] = 1
    with pytest.raises(TypeError):
        jobstatus.get("keep").update(y=object())
    job = Job("keep")
    job.status["z"] = 2
    assert jobstatus.get("keep").to_dict()["x"] == 1


def test_the_docs_examples_of_the_embedded_stores_run(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    doc = (Path(__file__).parent.parent / "docs" / "stores.md").read_text()
    section = doc[doc.index("## SQLite (the default)") : doc.index("## Redis and Redis Cluster")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    script = tmp_path / "doc.py"
    script.write_text("\n".join(blocks) + "\nprint(jobstatus.get('x').exists)\n")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
    assert "NonAtomicStoreWarning" in result.stderr


# -- a write that fails inside its transaction never keeps the write lock ----------------


class _Exploding(Change):
    """A change whose expiry cannot be computed: any exception, raised inside the transaction."""

    def ttl_for(self, record: object) -> float:
        raise RuntimeError("boom inside the transaction")


def _another_process_writes(url: str) -> int:
    spawn = multiprocessing.get_context("spawn")
    process = spawn.Process(target=_workers.set_key, args=(url, "other", "x", 1))
    process.start()
    process.join(60)
    return process.exitcode if process.exitcode is not None else -1


@pytest.mark.parametrize(
    ("refused", "error"),
    [
        (Change(incr={"progress": 1e308}), WriteRefused),  # a float sum that overflows
        (_Exploding(set={"step": "B"}), RuntimeError),
    ],
    ids=["overflow", "any-exception"],
)
def test_a_failed_write_releases_the_lock_for_every_process(
    tmp_path: Path, refused: Change, error: type[Exception]
) -> None:
    path = tmp_path / "lock.db"
    url = f"sqlite:///{path}?timeout=1"  # a held lock fails the other process after 1 s
    store = SQLiteStore(path)
    jobstatus.configure(store=store)
    store.write("j", Change(set={"progress": 1e308, "step": "A"}))
    with pytest.raises(error):
        store.write("j", refused)
    assert _another_process_writes(url) == 0  # not "database is locked"
    store.write("j", Change(set={"step": "C"}))  # not "cannot start a transaction within ..."
    assert store.read("j") == {"progress": 1e308, "step": "C"}
    assert jobstatus.get("other")["x"] == 1


def test_a_job_whose_big_value_fills_the_database_completes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "full.db")
    jobstatus.configure(store=store)
    jobstatus.get("warm")["x"] = 1  # the schema exists; the job runs in this thread
    db = store._connections.get()
    assert isinstance(db, sqlite3.Connection)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 16}")  # 64 KiB more: a full disk, in small

    def big_value(status: jobstatus.Status) -> None:
        status.update(blob="x" * 2_000_000, small="fits", force=True)

    final = job_with_a_refused_write(big_value, caplog)
    assert final["small"] == "fits" and "blob" not in final
    assert final.progress.current == 10
    assert "database or disk is full" in caplog.text


def test_a_disk_full_episode_ends_and_the_job_completes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "episode.db")
    jobstatus.configure(store=store)
    jobstatus.get("warm")["x"] = 1
    db = store._connections.get()
    assert isinstance(db, sqlite3.Connection)
    pages = db.execute("PRAGMA page_count").fetchone()[0]

    def fill(status: jobstatus.Status) -> None:
        status["filler"] = "y" * 20_000  # five pages: the database is now just full
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        status.update(during="x" * 10_000, force=True)  # refused: no page left
        status.progress.current = 3  # refused too, but kept: an absolute value
        db.execute(f"PRAGMA max_page_count = {pages + 1000}")  # room again

    final = job_with_a_refused_write(fill, caplog)
    assert "during" not in final and final["filler"] == "y" * 20_000
    assert final.progress.current == 13  # 3 was kept and written once there was room


def test_a_file_made_before_groups_and_names_gains_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE jobstatus (
            job_id TEXT PRIMARY KEY, record TEXT NOT NULL, status TEXT NOT NULL,
            updated_at REAL NOT NULL, expires_at REAL NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO jobstatus VALUES ('before', '{"status":"completed"}', 'completed', 1, 1e12);
        """
    )
    old.close()
    jobstatus.configure(store=f"sqlite:///{path}")
    group = jobstatus.group(name="after")
    Job("child", name="task", parent=group).enqueued()
    assert jobstatus.get("before").is_completed
    assert jobstatus.get(group.job_id).children.job_ids == ["child"]
    assert [s.job_id for s in jobstatus.recent(name="task")] == ["child"]
    assert jobstatus.counts()["completed"] == 1


def test_a_group_moved_in_sql_ends_as_the_python_merge_leaves_it(tmp_path: Path) -> None:
    """SQLite moves a group whose status stays (a child's progress) with json_set, not
    through Python: two levels of groups end key for key as the memory store's merge
    leaves them, floats to the last digit, name and history untouched."""
    from jobstatus.stores import MemoryStore

    def play(store: jobstatus.Store) -> list[dict[str, object]]:
        top = jobstatus.group(name="top", group_id="top", store=store)
        middle = jobstatus.group(name="middle", group_id="middle", parent=top, store=store)
        stamps = iter(f"2026-12-01T00:00:{second:02d}+00:00" for second in range(60))
        children = [f"child-{n}" for n in range(3)]
        for step in range(1, 8):
            for child in children:
                fields: dict[str, object] = {"parent": middle.job_id, "total": 7}
                fields.update(status="working", progress=step, updated_at=next(stamps))
                store.write(child, Change(set=fields))
        store.write(children[0], Change(set={"status": "failed", "updated_at": next(stamps)}))
        records = [store.read("middle"), store.read("top")]
        for record in records:  # the groups were made now, not at the stamps
            assert record is not None and record.pop("queued_at")
            assert record["history"][0].pop("at")
        return records  # type: ignore[return-value]

    in_sql = play(SQLiteStore(tmp_path / "groups.db"))
    in_python = play(MemoryStore())
    assert in_sql == in_python
    middle, top = in_sql
    assert middle["name"] == "middle" and middle["status"] == "failed"
    assert middle["progress"] == pytest.approx(3) and top["progress"] == pytest.approx(1)
    assert [entry["status"] for entry in middle["history"]] == ["queued", "working", "failed"]


def test_a_childs_progress_tick_moves_its_top_group_in_one_statement(tmp_path: Path) -> None:
    """A tick (a child's progress, its status the same) on a group without a parent is
    one UPDATE that neither reads the group nor parses it in Python, and leaves the
    group's record as the memory store's merge leaves it: seeded random ratios over
    many ticks, the float's every digit, and the statements a tick runs."""
    store = SQLiteStore(tmp_path / "ticks.db")
    trace: list[str] = []

    @contextmanager
    def traced() -> Iterator[None]:
        connection = store._connections.get()  # type: ignore[attr-defined]
        connection.set_trace_callback(trace.append)
        yield
        connection.set_trace_callback(None)

    in_sql = play_ticks(store, traced)
    assert in_sql == as_memory_leaves_it()
    assert in_sql["status"] == "working" and in_sql["total"] == 5
    assert 0 < in_sql["progress"] < 5  # type: ignore[operator]
    # The 100 traced writes: each reads and writes its child, then moves the group with
    # one UPDATE; nothing else reads the group.
    group_statements = [sql for sql in trace if "'$.progress'" in sql or "'ticks'" in sql]
    assert len(group_statements) == TRACED
    assert all(sql.lstrip().startswith("UPDATE") for sql in group_statements)
    assert sum(sql.lstrip().startswith("SELECT") for sql in trace) == TRACED


CLOSE_WHILE_ANOTHER_THREAD_WRITES = """
import sys, threading
from jobstatus._record import Change
from jobstatus.stores import SQLiteStore

store = SQLiteStore(sys.argv[1])
stop = threading.Event()
written = [0]

def writer():
    while not stop.is_set():
        written[0] += 1
        store.write("j", Change(set={"progress": written[0]}))

thread = threading.Thread(target=writer)
thread.start()
try:
    for _ in range(2000):
        store.read("other")  # a new connection each time, opened while the writer writes
        store.close()  # this thread's connection; the writer's stays its own
finally:
    stop.set()
    thread.join()
print(store.read("j")["progress"] == written[0], written[0] > 0)
"""


def test_closing_the_store_in_one_thread_leaves_another_threads_writes_alone(
    tmp_path: Path,
) -> None:
    # close() used to drop every thread's connection, closing the writer's from this
    # thread while it ran a statement: a segmentation fault. And opening a connection
    # while another wrote failed about one run in eight: "database is locked" from
    # PRAGMA journal_mode=WAL, which does not wait for the lock timeout.
    # In a process of its own, so a crash fails this test, not the run.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_ANOTHER_THREAD_WRITES, str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
