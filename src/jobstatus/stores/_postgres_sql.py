"""What the PostgreSQL store says to the server, and how records are encoded; no I/O.

Layout: one row per job::

    job_id text PRIMARY KEY, record jsonb, status text, updated_at float8, expires_at float8

``record`` is a jsonb object whose values are the JSON *text* of each value
(``{"step": "\\"A\\"", "progress": "60"}``). jsonb alone would not round-trip
every record exactly: it turns ``1e23`` into the integer ``100000000000000000000000``
and refuses U+0000 in strings. Keeping each value's text keeps floats floats
and ints ints, and a write still merges with jsonb's ``||``. Keys holding
U+0000 or a backslash are escaped (see :func:`encode_key`), as jsonb keys
cannot hold U+0000.

A write is one statement: ``INSERT ... ON CONFLICT DO UPDATE`` computes the
merge from the stored row (under its row lock, so concurrent writers never
lose each other's keys), the increments in SQL (ints stay ints when both are
ints; otherwise float8 addition, as Python does, which the server refuses
when the sum overflows), the status column and the expiry, then ``pg_notify``
sends ``<job id>\\n<record>`` to the table's channel. It answers whether it
was applied and whether it created the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .._errors import ConfigurationError
from .._record import (
    MAX_WRITERS,
    WRITES_KEY,
    Change,
    Record,
    apply_write,
    dumps,
    loads,
    parse_iso,
    refuse_unstorable,
)
from . import _url as url
from .base import SKIPPED, Written

DEFAULT_TABLE: Final = "jobstatus"
MAX_TABLE_LENGTH: Final = 48  # leaves room for index names within PostgreSQL's 63 bytes
NOTIFY_LIMIT: Final = 8000  # bytes; PostgreSQL refuses longer NOTIFY payloads
READ_CHUNK: Final = 5_000  # ids per query: a batch of 10,000 is two round trips
PURGE_EVERY: Final = 500  # writes per process between purges
PURGE_BATCH: Final = 1_000  # rows removed per purge, so a write never stalls long
PURGE_ALL_BATCH: Final = 20_000  # rows per statement of purge(), well within a timeout
URL_OPTIONS: Final = {
    "table": url.text,
    "timeout": url.seconds,
    "notify": url.flag,
    "synchronous_commit": url.flag,
    "max_size": url.count,
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# {t} is the quoted table name, {i_*} index names (psycopg.sql placeholders).
SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS {t} (
    job_id     text PRIMARY KEY,
    record     jsonb NOT NULL,
    status     text NOT NULL,
    updated_at double precision NOT NULL,
    expires_at double precision NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS {i_status} ON {t} (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS {i_updated} ON {t} (updated_at)",
    "CREATE INDEX IF NOT EXISTS {i_expires} ON {t} (expires_at)",
)

# The merge of one change into a base record (a SQL expression), giving the
# record, its status ('' when none) and the ttl that applies to it. A sum past a
# float's range is refused (as Python stores do): float8 addition overflows, and
# an int sum's cast to float8 fails, both with a data error the store reports as
# WriteRefused.
_INT = "'^-?[0-9]+$'"
_SUM = f"""CASE
      WHEN (p.merged ->> i.key) ~ {_INT} AND i.value ~ {_INT}
        THEN (SELECT CASE WHEN n::float8 IS NOT NULL THEN n::text END
              FROM (SELECT (p.merged ->> i.key)::numeric + i.value::numeric AS n) AS y)
      WHEN (p.merged ->> i.key) ~ '^-?[0-9]'
        THEN (SELECT CASE WHEN f ~ {_INT} THEN f || '.0' ELSE f END
              FROM (SELECT ((p.merged ->> i.key)::float8 + i.value::float8)::text AS f) AS x)
      ELSE i.value
    END"""
_MERGE = f"""SELECT r.record, r.status,
       CASE WHEN r.status IN ('completed', 'failed', 'cancelled') THEN %(finished_ttl)s
            ELSE %(ttl)s END AS ttl
FROM (
  SELECT s.record, COALESCE((s.record ->> 'status')::jsonb #>> ARRAY[]::text[], '') AS status
  FROM (
    SELECT p.merged || COALESCE((
      SELECT jsonb_object_agg(i.key, to_jsonb({_SUM}))
      FROM jsonb_each_text(%(incr)s::jsonb) AS i
    ), jsonb_build_object()) AS record
    FROM (SELECT __BASE__ || %(set)s::jsonb AS merged) AS p
    OFFSET 0
  ) AS s
) AS r"""
# OFFSET 0 keeps the planner from inlining the merge into each of the three
# columns that use it, which would compute it three times.

_LIVE_BASE = "CASE WHEN t.expires_at > %(now)s THEN t.record ELSE jsonb_build_object() END"
# The writers' last sequences (see WRITES_KEY), stored like any value: as JSON text.
_SEEN = f"COALESCE((({_LIVE_BASE}) ->> '')::jsonb, jsonb_build_object())"
_SEEN_AFTER = f"""CASE
  WHEN {_SEEN} ? %(writer)s::text
    OR (SELECT count(*) FROM jsonb_object_keys({_SEEN})) < {MAX_WRITERS}
    THEN {_SEEN} || jsonb_build_object(%(writer)s::text, %(sequence)s::bigint)
  ELSE jsonb_build_object(%(writer)s::text, %(sequence)s::bigint)
END"""
# A new row's values are computed in Python (the merge into nothing); the
# server merges only into a row that exists.
_UPSERT = f"""INSERT INTO {{t}} AS t (job_id, record, status, updated_at, expires_at)
VALUES (%(id)s, %(fresh)s::jsonb, %(fresh_status)s, COALESCE(%(updated)s, %(now)s),
        %(now)s + %(fresh_ttl)s)
ON CONFLICT (job_id) DO UPDATE SET (record, status, updated_at, expires_at) = (
  SELECT CASE WHEN %(writer)s::text IS NULL THEN m.record
              ELSE m.record || jsonb_build_object('', ({_SEEN_AFTER})::text) END,
         m.status,
         COALESCE(%(updated)s, CASE WHEN t.expires_at > %(now)s THEN t.updated_at END, %(now)s),
         %(now)s + m.ttl
  FROM ({_MERGE.replace("__BASE__", _LIVE_BASE)}) AS m
)
WHERE %(writer)s::text IS NULL
   OR COALESCE(({_SEEN} ->> %(writer)s::text)::bigint, 0) < %(sequence)s::bigint"""
# The WHERE skips a write this writer already applied (re-sent after a timeout).

# What the write did (see base.Written): whether it was applied, and whether no
# live row was there before. Every part of one statement sees the snapshot taken
# before the upsert, so ``prior`` reads the row as it was, expired or not.
_PRIOR = "SELECT p.expires_at > %(now)s AS live FROM {t} AS p WHERE p.job_id = %(id)s"
_ANSWER = """SELECT (SELECT count(*) FROM written) > 0 AS applied,
       NOT COALESCE((SELECT live FROM prior), false) AS created"""

WRITE: Final = f"""WITH prior AS ({_PRIOR}), written AS (
{_UPSERT}
RETURNING t.job_id
)
{_ANSWER}"""
WRITE_AND_NOTIFY: Final = f"""WITH prior AS ({_PRIOR}), written AS (
{_UPSERT}
RETURNING t.job_id, t.record
), notified AS (
SELECT pg_notify(%(channel)s, CASE WHEN octet_length(n.payload) < {NOTIFY_LIMIT}
                                   THEN n.payload ELSE n.job_id END)
FROM (SELECT job_id, job_id || E'\\n' || record::text AS payload FROM written) AS n
)
{_ANSWER}, (SELECT count(*) FROM notified) AS notified"""

READ: Final = "SELECT record FROM {t} WHERE job_id = %s AND expires_at > %s"
READ_MANY: Final = "SELECT job_id, record FROM {t} WHERE job_id = ANY(%s) AND expires_at > %s"
DELETE: Final = "DELETE FROM {t} WHERE job_id = %s"
PURGE: Final = """DELETE FROM {t} WHERE expires_at <= %(now)s AND job_id IN (
  SELECT job_id FROM {t} WHERE expires_at <= %(now)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)"""
LIST_ALL: Final = (
    "SELECT job_id, record FROM {t} WHERE expires_at > %s AND updated_at < %s "
    "ORDER BY updated_at DESC, job_id DESC LIMIT %s"
)
LIST_STATUS: Final = (
    "SELECT job_id, record FROM {t} WHERE status = %s AND expires_at > %s AND updated_at < %s "
    "ORDER BY updated_at DESC, job_id DESC LIMIT %s"
)


def check_table(table: object) -> str:
    """Return a valid table name or raise ConfigurationError saying why."""
    if not isinstance(table, str) or not _IDENTIFIER.fullmatch(table):
        raise ConfigurationError(
            f"table must be a SQL identifier (letters, digits and _, not starting with a "
            f"digit); got {table!r}"
        )
    if len(table) > MAX_TABLE_LENGTH:
        raise ConfigurationError(
            f"table name {table!r} is {len(table)} characters long; the limit is {MAX_TABLE_LENGTH}"
        )
    return table


def index_names(table: str) -> dict[str, str]:
    """The names of the table's indexes, keyed as SCHEMA names them."""
    return {
        "i_status": f"{table}_status_updated",
        "i_updated": f"{table}_updated",
        "i_expires": f"{table}_expires",
    }


def encode_key(key: str) -> str:
    """A record key as jsonb can hold it: backslash and U+0000 escaped (``\\\\``, ``\\0``)."""
    if "\\" not in key and "\x00" not in key:
        return key
    return key.replace("\\", "\\\\").replace("\x00", "\\0")


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def decode_key(key: str) -> str:
    """The inverse of :func:`encode_key`."""
    if "\\" not in key:
        return key
    return _ESCAPE.sub(lambda match: "\x00" if match.group(1) == "0" else match.group(1), key)


def decode_record(stored: Mapping[str, str] | str) -> Record:
    """A record from the ``record`` column (as psycopg loads it, or as jsonb text)."""
    fields = loads(stored) if isinstance(stored, str) else stored
    return {decode_key(key): loads(text) for key, text in fields.items() if key != WRITES_KEY}


def encode_record(record: Mapping[str, Any]) -> str:
    """The ``record`` column's jsonb text for a record."""
    return dumps({encode_key(key): dumps(value) for key, value in record.items()})


def write_params(job_id: str, change: Change, now: float, channel: str) -> dict[str, Any]:
    """The parameters of WRITE and WRITE_AND_NOTIFY."""
    fresh = apply_write(None, change)
    assert fresh is not None  # a write into nothing always applies
    status = fresh.get("status")
    return {
        "id": job_id,
        "fresh": encode_record(fresh),
        "fresh_status": status if isinstance(status, str) else "",
        "fresh_ttl": float(change.ttl_for(fresh)),
        "set": encode_record(change.set),
        "incr": dumps({encode_key(key): dumps(amount) for key, amount in _amounts(change)}),
        "ttl": float(change.ttl),
        "finished_ttl": float(change.finished_ttl),
        "updated": parse_iso(change.set.get("updated_at")),
        "now": now,
        "channel": channel,
        "writer": change.origin[0] if change.origin else None,
        "sequence": change.origin[1] if change.origin else 0,
    }


def written(applied: bool, created: bool) -> Written:
    """What the write statement's answer says."""
    return Written(created=created) if applied else SKIPPED


def _amounts(change: Change) -> list[tuple[str, float]]:
    for key, amount in change.incr.items():
        refuse_unstorable(key, amount)
    return list(change.incr.items())


def decode_notify(payload: str) -> tuple[str, Record | None]:
    """``(job_id, record)`` from a notification; the record is None when it was too large."""
    job_id, newline, text = payload.partition("\n")
    return job_id, decode_record(text) if newline else None


def session_options(timeout: float, synchronous_commit: bool) -> str:
    """libpq ``options`` for the store's own sessions.

    Every statement and lock wait is bounded by ``timeout``; float8 text is the
    shortest that reads back exactly (as Python's ``repr``). Without
    ``synchronous_commit`` a commit does not wait for the WAL flush: several
    times more writes per second on a busy job, at the price of losing the last
    fraction of a second of status writes if the server crashes.

    ``plan_cache_mode`` stays at PostgreSQL's default: a listing's best plan
    depends on its values (after a mass expiry the expiry index finds the few
    live rows at once, where a generic plan read past a million expired rows).
    """
    milliseconds = max(1, round(timeout * 1000))
    commit = "on" if synchronous_commit else "off"
    return (
        f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds} "
        f"-c extra_float_digits=1 -c synchronous_commit={commit}"
    )
