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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigurationError, StoreError
from .._record import STATES, Change, Record, apply_write, dumps, loads, loads_record, parse_iso
from ._url import seconds, take_options
from .base import DEFAULT_TIMEOUT, Clock, Listing, PerProcess, Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobstatus (
    job_id     TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    status     TEXT NOT NULL,  -- '' when the record has no status
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobstatus_status_updated ON jobstatus (status, updated_at);
CREATE INDEX IF NOT EXISTS jobstatus_expires ON jobstatus (expires_at);
"""
# Each index costs every write about as much as the upsert itself, so there are
# two: listing all statuses merges the per-status ranges of the first one.

UPSERT = """
INSERT INTO jobstatus (job_id, record, status, updated_at, expires_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET
    record = excluded.record, status = excluded.status,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at
"""

PURGE = """
DELETE FROM jobstatus WHERE job_id IN (
    SELECT job_id FROM jobstatus WHERE expires_at <= ? LIMIT ?
)
"""

PURGE_EVERY = 500  # writes per process between purges
PURGE_BATCH = 1000  # rows removed per purge, so a write never stalls long
READ_CHUNK = 10_000  # ids per query: a batch of 100,000 is ten round trips


class SQLiteStore(Store, Listing):
    """A store in one SQLite file, safe across threads and processes.

    Args:
        path: the database file; its folder is created if missing.
        timeout: seconds to wait for another writer's lock before failing.
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
        self.timeout = timeout
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
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc
        return connection

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = self._connections.get()
        assert isinstance(connection, sqlite3.Connection)
        try:
            yield connection
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.rollback()
            raise StoreError(f"SQLite store at {self.path} failed: {exc}") from exc

    def write(self, job_id: str, change: Change) -> None:
        now = self._clock()
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT record FROM jobstatus WHERE job_id = ? AND expires_at > ?", (job_id, now)
            ).fetchone()
            record = apply_write(loads(row[0]) if row else None, change)
            if record is None:
                db.execute("COMMIT")
                return  # this write was applied already
            updated = parse_iso(record.get("updated_at")) or now
            db.execute(
                UPSERT,
                (
                    job_id,
                    dumps(record),
                    record.get("status") or "",
                    updated,
                    now + change.ttl_for(record),
                ),
            )
            if self._due_for_purge():
                db.execute(PURGE, (now, PURGE_BATCH))
            db.execute("COMMIT")

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
        now, upper = self._clock(), float("inf") if before is None else before
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

    def close(self) -> None:
        connection = self._connections.get()
        assert isinstance(connection, sqlite3.Connection)
        connection.close()
        self._connections.reset()
