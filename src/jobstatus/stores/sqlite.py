"""``sqlite:///path.db``: the embedded default, shared by every process on the machine.

One row per job in WAL mode. A write is one ``BEGIN IMMEDIATE`` transaction
that reads the row, applies the change and writes it back while holding
SQLite's write lock, so merges and increments from any number of threads and
processes are serialized and none is lost. Expired rows are ignored by reads
and purged in small batches by writes, so no separate daemon is needed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigurationError, StoreError, WriteRefused
from .._record import FINISHED_STATES, STATES, Change, Record, dumps, loads, loads_record, parse_iso
from .._rollup import CHILDREN_KEY, State, write_through
from ._options import check_timeout
from ._url import seconds, take_options
from .base import DEFAULT_TIMEOUT, Clock, Listing, PerProcess, Purge, Store, Written

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobstatus (
    job_id     TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    status     TEXT NOT NULL,  -- '' when the record has no status
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    parent     TEXT,           -- the record's group, or NULL
    name       TEXT            -- the task's name, or NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobstatus_status_updated ON jobstatus (status, updated_at);
CREATE INDEX IF NOT EXISTS jobstatus_expires ON jobstatus (expires_at);
"""
# Added with groups and names; a file made before them gains them when first opened.
# The indexes hold (value, job_id): a write that changes neither leaves them alone.
ADDED_COLUMNS = {
    "parent": (
        "ALTER TABLE jobstatus ADD COLUMN parent TEXT",
        "CREATE INDEX IF NOT EXISTS jobstatus_parent ON jobstatus (parent, job_id) "
        "WHERE parent IS NOT NULL",
    ),
    "name": (
        "ALTER TABLE jobstatus ADD COLUMN name TEXT",
        "CREATE INDEX IF NOT EXISTS jobstatus_name ON jobstatus (name, job_id) "
        "WHERE name IS NOT NULL",
    ),
}
# Each index costs every write about as much as the upsert itself, so there are
# two: listing all statuses merges the per-status ranges of the first one.

UPSERT = """
INSERT INTO jobstatus (job_id, record, status, updated_at, expires_at, parent, name)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET
    record = excluded.record, status = excluded.status,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at,
    parent = excluded.parent, name = excluded.name
"""
# A live record whose parent and name stay (most writes).
UPDATE = """
UPDATE jobstatus SET record = ?, status = ?, updated_at = ?, expires_at = ? WHERE job_id = ?
"""

# A group's move that leaves its status as it is (a child's progress, most moves) reads
# and writes the few keys it changes (_rollup.STEADY_READS, STEADY_WRITES), in SQL: the
# group's whole record (its history, its name) is neither parsed nor built in Python.
# Numbers go in as JSON text, so a float keeps every digit Python gives it.
# One json_extract of three paths (a JSON array) parses the record once; three calls
# parse it three times.
STEADY_READ = """
SELECT json_extract(record, '$.children', '$.total', '$.progress'), status, parent
FROM jobstatus WHERE job_id = ? AND expires_at > ?
"""
STEADY_WRITE = """
UPDATE jobstatus SET
    record = json_set(record, '$.children', json(?), '$.total', ?, '$.progress', json(?),
                      '$.updated_at', ?),
    updated_at = ?, expires_at = ?
WHERE job_id = ?
"""

_FINISHED = " ".join(f"WHEN '{state}' THEN ?6" for state in sorted(FINISHED_STATES))
# A child's progress tick on a top group (_rollup.UpdateProgress): one statement, no
# read. The arithmetic is roll_up's, in the same order ((progress - before) + after,
# clamped to [0, total]), in IEEE doubles like Python's; '%!.17g' writes every digit
# back (json_set's own rendering keeps 15). The WHERE holds what makes it roll_up's
# answer: a live top group whose counts hold the child. Each JSON function call costs
# about a tenth of the statement (it finds the parsed record by comparing its text),
# so the total is the stored one: every write of a group's counts writes their sum.
PROGRESS_MOVE = f"""
UPDATE jobstatus SET
    record = json_set(
        record,
        '$.progress',
        json(printf('%!.17g', min(max(json_extract(record, '$.progress') - ?1 + ?2, 0.0),
                                  1.0 * json_extract(record, '$.total')))),
        '$.updated_at', ?3
    ),
    updated_at = ?4,
    expires_at = ?5 + CASE status {_FINISHED} ELSE ?7 END
WHERE job_id = ?8 AND expires_at > ?5 AND parent IS NULL
    AND json_type(record, '$.children.' || ?9) = 'integer'
    AND json_extract(record, '$.children.' || ?9) >= 1
    AND json_type(record, '$.progress') IN ('integer', 'real')
"""

PURGE = """
DELETE FROM jobstatus WHERE job_id IN (
    SELECT job_id FROM jobstatus WHERE expires_at <= ? LIMIT ?
)
"""

PURGE_EVERY = 500  # writes per process between purges
PURGE_BATCH = 1000  # rows removed per purge, so a write never stalls long
READ_CHUNK = 10_000  # ids per query: a batch of 100,000 is ten round trips
# What SQLite answers for a change it cannot take however often it is sent:
# the database (or its disk, or max_page_count) is full, or a value is too big.
REFUSALS = ("SQLITE_FULL", "SQLITE_TOOBIG")
REFUSAL_MESSAGES = ("database or disk is full", "string or blob too big")


class SQLiteStore(Listing, Purge, Store):
    """A store in one SQLite file, safe across threads and processes.

    Args:
        path: the database file; its folder is created if missing.
        timeout: seconds to wait for another writer's lock before failing
            (positive and finite).
        clock: returns epoch seconds; inject one in tests to expire records.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        if str(path) in ("", ":memory:"):
            raise ConfigurationError(
                "sqlite:///:memory: would give each connection its own empty database; "
                "use memory:// for an in-process store"
            )
        self.timeout = check_timeout(timeout)
        self._clock = clock
        self._connections = PerProcess(
            self._connect, per_thread=True, close=sqlite3.Connection.close
        )
        self._writes = 0
        self._writes_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's form).

        A ``?timeout=`` query parameter sets the lock timeout in seconds.
        """
        parts = urlsplit(url)
        if parts.netloc:
            raise ConfigurationError(
                f"SQLite URL {url!r} has a host; write sqlite:///relative.db "
                "or sqlite:////absolute/path.db"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ConfigurationError(f"SQLite URL {url!r} names no file")
        take_options(url, options, {"timeout": seconds}, driver_reads_rest=False)
        return cls(path, **options)

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            is_new = not self.path.exists()
            connection = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            if is_new:
                # Status data may be private: only the owner may read the file.
                os.chmod(self.path, 0o600)
            self._use_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(jobstatus)")}
            for column, (add, index) in ADDED_COLUMNS.items():
                if column not in columns:
                    connection.execute(add)
                connection.execute(index)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc
        return connection

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        # The mode lives in the file, so a connection only asks. Setting it on a file
        # already in WAL mode can still fail at once ("database is locked", without
        # waiting for the lock timeout) while another connection writes.
        if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                # A file that cannot take WAL keeps its mode: SQLite answers, not raises.
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                # Another process may be creating the file at this moment.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = self._connections.get()
        assert isinstance(connection, sqlite3.Connection)
        try:
            yield connection
        except BaseException as exc:
            # Whatever went wrong, the write lock goes: an open transaction would
            # stop every other process's writes ("database is locked").
            self._end_transaction(connection)
            if isinstance(exc, sqlite3.Error):
                raise _store_error(self.path, exc) from exc
            raise

    def _end_transaction(self, connection: sqlite3.Connection) -> None:
        if not connection.in_transaction:
            return
        with suppress(sqlite3.Error):
            connection.rollback()
        if connection.in_transaction:  # the rollback failed too: start afresh
            with suppress(sqlite3.Error):
                connection.close()
            self._connections.forget()

    def write(self, job_id: str, change: Change) -> Written:
        now = self._clock()
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")

            def update(
                key: str, compute: Callable[[Record | None], Record | None]
            ) -> tuple[Record | None, Record | None]:
                row = db.execute(
                    "SELECT record FROM jobstatus WHERE job_id = ? AND expires_at > ?", (key, now)
                ).fetchone()
                old = loads(row[0]) if row else None
                new = compute(old)
                if new is not None:
                    self._save(db, key, old, new, now, change.ttl_for(new))
                return old, new

            def update_steady(
                key: str, compute: Callable[[Record], Record | None]
            ) -> tuple[Record, Record] | None:
                row = db.execute(STEADY_READ, (key, now)).fetchone()
                if row is None:
                    return None
                steady, status, parent = row
                children, total, progress = loads(steady)
                old: Record = {"total": total, "progress": progress, "parent": parent}
                if isinstance(children, dict):
                    old[CHILDREN_KEY] = children
                if status:
                    old["status"] = status
                new = compute(old)
                if new is None:
                    return None
                at = new.get("updated_at")
                keys = (dumps(new[CHILDREN_KEY]), new["total"], dumps(new["progress"]), at)
                ttl = change.ttl_for(new)
                db.execute(STEADY_WRITE, (*keys, parse_iso(at) or now, now + ttl, key))
                return old, new

            def update_progress(key: str, before: State, after: State, at: str) -> bool:
                values = (before.ratio, after.ratio, at, parse_iso(at) or now, now)
                ttls = (change.finished_ttl, change.ttl)
                moved = db.execute(PROGRESS_MOVE, (*values, *ttls, key, before.status))
                return moved.rowcount == 1

            written = write_through(update, job_id, change, update_steady, update_progress)
            if written.applied and self._due_for_purge():
                db.execute(PURGE, (now, PURGE_BATCH))
            db.execute("COMMIT")
            return written

    @staticmethod
    def _save(
        db: sqlite3.Connection, job_id: str, old: Record | None, new: Record, now: float, ttl: float
    ) -> None:
        values = (
            dumps(new),
            new.get("status") or "",
            parse_iso(new.get("updated_at")) or now,
            now + ttl,
        )
        if old is not None and _listed(old) == _listed(new):
            # SQLite rewrites a partial index whose column an UPDATE sets, even to the
            # same value: leaving parent and name out spares a page per write.
            db.execute(UPDATE, (*values, job_id))
        else:
            db.execute(UPSERT, (job_id, *values, *_listed(new)))

    def _due_for_purge(self) -> bool:
        with self._writes_lock:
            self._writes += 1
            return self._writes % PURGE_EVERY == 1

    def purge(self) -> int:
        """Delete every expired row now; return how many were removed."""
        with self._connection() as db:
            cursor = db.execute("DELETE FROM jobstatus WHERE expires_at <= ?", (self._clock(),))
            return cursor.rowcount

    def read(self, job_id: str) -> Record | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT record FROM jobstatus WHERE job_id = ? AND expires_at > ?",
                (job_id, self._clock()),
            ).fetchone()
        return loads_record(row[0]) if row else None

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        found: dict[str, Record] = {}
        now = self._clock()
        with self._connection() as db:
            for start in range(0, len(job_ids), READ_CHUNK):
                chunk = dumps(list(job_ids[start : start + READ_CHUNK]))
                rows = db.execute(
                    "SELECT job_id, record FROM jobstatus "
                    "WHERE job_id IN (SELECT value FROM json_each(?)) AND expires_at > ?",
                    (chunk, now),
                )
                found.update((job_id, loads_record(record)) for job_id, record in rows)
        return [found.get(job_id) for job_id in job_ids]

    def delete(self, job_id: str) -> None:
        with self._connection() as db:
            db.execute("DELETE FROM jobstatus WHERE job_id = ?", (job_id,))

    def child_ids(self, parent: str) -> list[str]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT job_id FROM jobstatus WHERE parent = ? AND expires_at > ? ORDER BY job_id",
                (parent, self._clock()),
            ).fetchall()
        return [job_id for (job_id,) in rows]

    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        one_status = (
            "SELECT job_id, record, updated_at FROM jobstatus "
            "WHERE status = ? AND expires_at > ? AND updated_at < ? "
            "ORDER BY updated_at DESC, job_id DESC LIMIT ?"
        )
        statuses = [status] if status is not None else ["", *STATES]
        query = " UNION ALL ".join(f"SELECT * FROM ({one_status})" for _ in statuses)
        now, upper = self._clock(), _upper(before)
        params: list[object] = []
        for name in statuses:
            params += [name, now, upper, limit]
        with self._connection() as db:
            rows = db.execute(
                f"SELECT job_id, record FROM ({query}) ORDER BY updated_at DESC, job_id DESC "
                "LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [(job_id, loads_record(record)) for job_id, record in rows]

    def find(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        if name is None and id_prefix is None:
            return self.list_recent(status, limit, before)
        where = ["expires_at > ?", "updated_at < ?"]
        params: list[object] = [self._clock(), _upper(before)]
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if id_prefix is not None:
            # A range of the primary key: every id that starts with the prefix sorts
            # between it and the prefix followed by the last code point.
            where.append("job_id >= ? AND job_id < ?")
            params += [id_prefix, id_prefix + "\U0010ffff"]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        query = (
            f"SELECT job_id, record FROM jobstatus WHERE {' AND '.join(where)} "
            "ORDER BY updated_at DESC, job_id DESC LIMIT ?"
        )
        with self._connection() as db:
            rows = db.execute(query, [*params, limit]).fetchall()
        return [(job_id, loads_record(record)) for job_id, record in rows]

    def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        with self._connection() as db:
            # Every row, counted on the (status, updated_at) index; then the expired
            # ones (few: writes purge them) taken away, found by the expiry index.
            everything = db.execute(
                "SELECT status, count(*) FROM jobstatus INDEXED BY jobstatus_status_updated "
                "GROUP BY status"
            ).fetchall()
            # Named, since for GROUP BY status the planner prefers the status index and
            # reads every row (0.4 s at a million) to find the few expired ones.
            expired = db.execute(
                "SELECT status, count(*) FROM jobstatus INDEXED BY jobstatus_expires "
                "WHERE expires_at <= ? GROUP BY status",
                (self._clock(),),
            ).fetchall()
        for status, count in everything:
            if status in counts:
                counts[status] += count
        for status, count in expired:
            if status in counts:
                counts[status] -= count
        return counts

    def count_stale(self, updated_before: float) -> int:
        with self._connection() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM jobstatus "
                "WHERE status = 'working' AND updated_at < ? AND expires_at > ?",
                (updated_before, self._clock()),
            ).fetchone()
        return int(count)

    def close(self) -> None:
        """Close this thread's connection (another thread's closes when that thread ends)."""
        connection = self._connections.peek()
        if isinstance(connection, sqlite3.Connection):
            connection.close()
        self._connections.forget()


def _listed(record: Record) -> tuple[str | None, str | None]:
    """The record's parent and name columns: each key's str, else NULL."""
    parent, name = record.get("parent"), record.get("name")
    return (parent if isinstance(parent, str) else None, name if isinstance(name, str) else None)


def _upper(before: float | None) -> float:
    return float("inf") if before is None else before


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """The StoreError for a failed call: WriteRefused when sending it again cannot help."""
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    message = str(exc)
    refused = name in REFUSALS or (name is None and message in REFUSAL_MESSAGES)
    error = WriteRefused if refused else StoreError
    return error(f"SQLite store at {path} failed: {message}")
