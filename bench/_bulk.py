"""Fill Redis and PostgreSQL stores fast, through each store's own write path.

A million single writes would time the filling, not the store. These loaders
send the very script (Redis) or statement (PostgreSQL) that ``store.write``
sends, with the same arguments, many per round trip: the records, indexes and
expiries they leave are exactly those of ordinary writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from jobstatus._record import Change, utc_now_iso
from jobstatus.stores._redis_common import write_args
from jobstatus.stores.postgres import PostgresStore
from jobstatus.stores.redis import RedisStore

Writes = Iterable[tuple[str, Change]]
T = TypeVar("T")
CHUNK = 2_000


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_redis(store: RedisStore, writes: Writes) -> int:
    """Run the store's write script for each ``(job_id, change)``, pipelined; return the count."""
    scripts = store._scripts()
    layout = store._layout
    count = 0
    for chunk in chunks(writes, CHUNK):
        pipe = scripts.client.pipeline(transaction=False)
        for job_id, change in chunk:
            args = write_args(layout, job_id, change)
            scripts.write(layout.script_keys(job_id), args, client=pipe)
        pipe.execute()
        count += len(chunk)
    return count


def load_postgres(store: PostgresStore, writes: Writes) -> int:
    """Run the store's write statement for each ``(job_id, change)`` with ``executemany``
    (psycopg pipelines it); return the count."""
    store.migrate()
    count = 0
    with store._lease() as (conn, _):
        # A chunk must finish within the store's timeout: each write is a function call.
        for chunk in chunks(writes, CHUNK):
            params = [store._write_params(job_id, change) for job_id, change in chunk]
            with conn.cursor() as cursor:
                cursor.executemany(store._statements["write"], params)
            count += len(chunk)
        # A pipelined chunk is one transaction, so each counts row it moves keeps
        # thousands of dead versions that ordinary writes (a transaction each) prune
        # at once: vacuum them, as autovacuum would within its first minute.
        conn.execute(
            store._sql.SQL("VACUUM {}").format(store._sql.Identifier(f"{store.table}_counts"))
        )
    return count


def finished_jobs(start: int, stop: int, ttl: float = 3600) -> Writes:
    """Records like a finished job's (every tenth failed), ids ``job-0000000`` on."""
    for n in range(start, stop):
        state = "failed" if n % 10 == 0 else "completed"
        fields = {
            "status": state,
            "progress": 1.0,
            "name": "reports.export",
            "queue": "default",
            "updated_at": utc_now_iso(),
        }
        yield f"job-{n:07d}", Change(set=fields, ttl=ttl, finished_ttl=ttl)
