"""What the PostgreSQL store says to the server, and how records are encoded; no I/O.

Layout (schema 2): one row per job, a table of counts, and the write function::

    {t}         job_id text PRIMARY KEY, record jsonb, status text, updated_at float8,
                expires_at float8, parent text, name text
    {t}_counts  status text, shard int, n bigint: rows per status (expired ones too)
    {t}_write   the PL/pgSQL function every write calls, once

``record`` is a jsonb object whose values are the JSON *text* of each value
(``{"step": "\\"A\\"", "progress": "60"}``). jsonb alone would not round-trip
every record exactly: it turns ``1e23`` into the integer ``100000000000000000000000``
and refuses U+0000 in strings. Keeping each value's text keeps floats floats
and ints ints, and a write still merges with jsonb's ``||``. Keys holding
U+0000 or a backslash are escaped (see :func:`encode_key`), as jsonb keys
cannot hold U+0000.

A write is one statement, ``SELECT * FROM {t}_write(...)``, and the function
does the whole :class:`~jobstatus._record.Change` under row locks: the guard on
the live record, the writer's de-duplication (``origin``), removals, sets,
increments (ints stay ints when both are ints; otherwise float8 addition, which
the server refuses when the sum overflows: ``WriteRefused``), history events,
the ttl, then the roll-up through the record's groups (``_rollup.move_groups``,
the same arithmetic, at most ``MAX_DEPTH`` levels; a child's progress tick on a
top group is one ``UPDATE`` of the group's row, as on SQLite), the counts, and a
``pg_notify`` of each record it wrote. It answers what
:class:`~jobstatus._record.Written` needs: applied, created, the pending cancel
request and, for a start, when the job was queued.

Locks, and why writers never deadlock: a write locks its record's row, then
its group's, then that group's group, always child before ancestor; every
writer takes them in that one order along the (acyclic: the core refuses a
job as its own ancestor) parent chain. The counts rows come last, in the fixed
order of their status names, so no writer waits for a record while holding a
count. ``purge`` skips locked rows and ``delete`` locks one row, then counts.

Counts: ``count_by_status`` must answer at a million rows in milliseconds, and
``GROUP BY status`` over an index reads every index entry (and the heap where
the visibility map is not set): tens of milliseconds at a million, growing with
the table. So the write function keeps ``{t}_counts`` in the same transaction:
each backend adds to its own shard (``pg_backend_pid() % 16``), so concurrent
writers rarely wait on one counts row, and a count is a sum of 80 rows minus
the expired rows not yet purged (found by the expiry index).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .._errors import ConfigurationError
from .._record import (
    MAX_WRITERS,
    STATES,
    WRITES_KEY,
    Change,
    Record,
    apply_write,
    dumps,
    loads,
    parse_iso,
    refuse_unstorable,
)
from .._rollup import MAX_DEPTH
from . import _url as url
from .base import Written

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

SCHEMA_VERSION: Final = 2
COUNT_SHARDS: Final = 16
# Alphabetical: the order in which a write takes its counts rows (see the docstring).
COUNTED: Final = ("cancelled", "completed", "failed", "queued", "working")
_COUNTED_SQL = ", ".join(f"'{state}'" for state in COUNTED)
_FINISHED_SQL = "'completed', 'failed', 'cancelled'"

# Names other than the table's: index and function names (psycopg.sql placeholders).
OBJECTS: Final = {
    "c": "{table}_counts",
    "i_status": "{table}_status_updated",
    "i_updated": "{table}_updated",
    "i_expires": "{table}_expires",
    "i_parent": "{table}_parent",
    "i_name": "{table}_name_updated",
    "f_write": "{table}_write",
    "f_state": "{table}_state",
    "f_str": "{table}_str",
    "f_pending": "{table}_pending",
    "f_append": "{table}_append",
    "f_queued": "{table}_queued_since",
    "f_float": "{table}_float",
    "f_counted": "{table}_counted",
    "f_stale": "{table}_stale",
}
FUNCTIONS: Final = tuple(key for key in OBJECTS if key.startswith("f_"))

# The first schema (before 2) had no parent and name columns, no counts table and
# no write function; migrate() brings such a table up to date (see MIGRATE).
TABLE: Final = """CREATE TABLE IF NOT EXISTS {t} (
    job_id     text PRIMARY KEY,
    record     jsonb NOT NULL,
    status     text NOT NULL,
    updated_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    parent     text,
    name       text
)"""
VERSION: Final = "SELECT obj_description(to_regclass(%s), 'pg_class')"

# A value of a record that is a JSON string, as text; NULL for anything else.
# (A bare SELECT of an expression: PostgreSQL inlines it into its callers.)
_STR = """CREATE OR REPLACE FUNCTION {f_str}(rec jsonb, key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN left(rec ->> key, 1) = '"' THEN (rec ->> key)::jsonb #>> ARRAY[]::text[] END
$$"""
# A float8 as Python writes a float: 3.0, not 3.
_FLOAT = """CREATE OR REPLACE FUNCTION {f_float}(x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN x::text ~ '^-?[0-9]+$' THEN x::text || '.0' ELSE x::text END
$$"""
# _record.pending_cancel: the request's JSON text while the record is unfinished.
_PENDING = """CREATE OR REPLACE FUNCTION {f_pending}(rec jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN {f_str}(rec, 'status') IN ('queued', 'working')
               AND jsonb_typeof((rec ->> 'cancel')::jsonb) = 'object'
              THEN rec ->> 'cancel' END
$$"""
# _rollup.state_of: what a record adds to its group (both NULL: nothing).
_STATE = f"""CREATE OR REPLACE FUNCTION {{f_state}}(rec jsonb, OUT status text, OUT ratio float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  v_status text := {{f_str}}(rec, 'status');
  v_progress float8;
  v_total float8;
BEGIN
  IF v_status IS NULL OR v_status NOT IN ({_COUNTED_SQL}) THEN
    RETURN;
  END IF;
  status := v_status;
  ratio := 0.0;
  IF v_status IN ({_FINISHED_SQL}) THEN
    ratio := 1.0;
  ELSIF jsonb_typeof((rec ->> 'total')::jsonb) = 'number'
        AND jsonb_typeof((rec ->> 'progress')::jsonb) = 'number' THEN
    v_progress := (rec ->> 'progress')::float8;
    v_total := (rec ->> 'total')::float8;
    -- Clamped first: Python's division gives inf or 0.0 where float8's raises.
    IF v_total <= 0 OR v_progress <= 0 THEN
      ratio := 0.0;
    ELSIF v_progress >= v_total THEN
      ratio := 1.0;
    ELSIF v_progress >= 1e-200 AND v_total <= 1e100 THEN
      ratio := v_progress / v_total;
    ELSE
      BEGIN
        ratio := v_progress / v_total;
      EXCEPTION WHEN numeric_value_out_of_range THEN  -- a quotient too small: 0
        ratio := 0.0;
      END;
    END IF;
  END IF;
END
$$"""
# _record.append_history: an entry with the record's attempt, the last `lim` kept.
_APPEND = """CREATE OR REPLACE FUNCTION {f_append}(rec jsonb, event text, at text, lim integer)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  v_history jsonb;
  v_attempt text := rec ->> 'attempts';
  v_length integer;
BEGIN
  IF lim <= 0 THEN
    RETURN rec;
  END IF;
  v_history := (rec ->> 'history')::jsonb;
  IF v_history IS NULL OR jsonb_typeof(v_history) <> 'array' THEN
    v_history := jsonb_build_array();
  END IF;
  IF v_attempt IS NULL OR v_attempt !~ '^-?[0-9]+$' THEN
    v_attempt := '0';
  END IF;
  v_history := v_history || jsonb_build_array(
    jsonb_build_object('status', event, 'at', at, 'attempt', v_attempt::numeric));
  v_length := jsonb_array_length(v_history);
  IF v_length > lim THEN
    SELECT jsonb_agg(x.e ORDER BY x.i) INTO v_history
    FROM jsonb_array_elements(v_history) WITH ORDINALITY AS x(e, i)
    WHERE x.i > v_length - lim;
  END IF;
  RETURN rec || jsonb_build_object('history', v_history::text);
END
$$"""
# _rollup.queued_since: when the record became queued, for a write that started it.
_QUEUED = """CREATE OR REPLACE FUNCTION {f_queued}(old jsonb, new jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  v_history jsonb;
  v_entry jsonb;
  v_attempts jsonb;
BEGIN
  IF old IS NULL OR {f_str}(old, 'status') IS DISTINCT FROM 'queued'
     OR {f_str}(new, 'status') IS DISTINCT FROM 'working' THEN
    RETURN NULL;
  END IF;
  v_history := (old ->> 'history')::jsonb;
  IF jsonb_typeof(v_history) = 'array' THEN
    SELECT x.e INTO v_entry
    FROM jsonb_array_elements(v_history) WITH ORDINALITY AS x(e, i)
    WHERE jsonb_typeof(x.e) = 'object' AND x.e -> 'status' = to_jsonb('queued'::text)
    ORDER BY x.i DESC LIMIT 1;
    IF FOUND THEN
      RETURN CASE WHEN jsonb_typeof(v_entry -> 'at') = 'string' THEN v_entry ->> 'at' END;
    END IF;
  END IF;
  v_attempts := (old ->> 'attempts')::jsonb;
  IF v_attempts IS NULL OR v_attempts = ANY (ARRAY['0', 'false', 'null', '""', '[]']::jsonb[])
     OR v_attempts = jsonb_build_object() THEN
    RETURN {f_str}(old, 'queued_at');
  END IF;
  RETURN NULL;
END
$$"""

# Moves the counts of the write (v_delta, indexed as COUNTED) from `before` to `after`.
_SHIFT = """
  v_i := array_position(v_states, {before});
  IF v_i IS NOT NULL THEN v_delta[v_i] := v_delta[v_i] - 1; END IF;
  v_i := array_position(v_states, {after});
  IF v_i IS NOT NULL THEN v_delta[v_i] := v_delta[v_i] + 1; END IF;"""
_NOTIFY = """
  IF p_channel IS NOT NULL THEN
    v_payload := {id} || E'\\n' || {rec}::text;
    PERFORM pg_notify(p_channel, CASE WHEN octet_length(v_payload) < __LIMIT__
                                      THEN v_payload ELSE {id} END);
  END IF;"""
_TTL = f"p_now + CASE WHEN {{status}} IN ({_FINISHED_SQL}) THEN p_finished_ttl ELSE p_ttl END"


# The group's counts in COUNTED's order, as roll_up reads them (a count that is not a
# number is 0). One expression, not a query over unnest: plpgsql evaluates a plain
# expression without planning and running a query.
_COUNTS = "ARRAY[{}]".format(
    ", ".join(
        f"CASE WHEN jsonb_typeof(v_children -> '{state}') = 'number' "
        f"THEN greatest(trunc((v_children ->> '{state}')::numeric), 0)::bigint ELSE 0 END"
        for state in COUNTED
    )
)


def _shift(before: str, after: str) -> str:
    return _SHIFT.replace("{before}", before).replace("{after}", after)


def _notify(job_id: str, record: str) -> str:
    return _NOTIFY.replace("{id}", job_id).replace("{rec}", record)


def _ttl(status: str) -> str:
    return _TTL.replace("{status}", status)


# A child's progress tick on a top group, as SQLite's PROGRESS_MOVE: one UPDATE, no
# read first, no counts rebuilt. roll_up's arithmetic in its order ((progress - before)
# + after, clamped to [0, total]); the WHERE holds what makes it roll_up's answer: a
# live top group whose counts hold the child as an integer, and a numeric progress.
# The total is the stored one: every write of a group's counts writes their sum.
# Otherwise (nothing FOUND) the full move below runs.
_PROGRESS_MOVE = f"""UPDATE {{t}} AS t
         SET record = t.record || jsonb_build_object(
               'progress', {{f_float}}(least(greatest(
                   (t.record ->> 'progress')::float8 - v_b_ratio + v_a_ratio, 0.0),
                   (t.record ->> 'total')::float8)),
               'updated_at', to_jsonb(v_at)::text),
             updated_at = v_updated,
             expires_at = {_ttl("t.status")}
       WHERE t.job_id = v_parent AND t.expires_at > p_now AND t.parent IS NULL
         AND jsonb_typeof((t.record ->> 'progress')::jsonb) = 'number'
         AND jsonb_typeof((t.record ->> 'total')::jsonb) = 'number'
         AND COALESCE(((t.record ->> 'children')::jsonb ->> v_a_status) ~ '^[1-9][0-9]*$',
                      false)
      RETURNING t.record INTO v_g_new;"""

# The write: see the module's docstring. {{ }} are braces psycopg.sql leaves as they are.
_WRITE = f"""CREATE OR REPLACE FUNCTION {{f_write}}(
  p_id text, p_fresh jsonb, p_set jsonb, p_incr jsonb, p_unset text[], p_guard text,
  p_events jsonb, p_limit integer, p_ttl float8, p_finished_ttl float8, p_updated float8,
  p_now float8, p_writer text, p_sequence bigint, p_channel text,
  OUT applied boolean, OUT created boolean, OUT cancel text, OUT queued_at text)
LANGUAGE plpgsql AS $$
DECLARE
  v_states CONSTANT text[] := ARRAY[{_COUNTED_SQL}];
  v_delta integer[] := ARRAY[0, 0, 0, 0, 0];
  v_shard CONSTANT integer := pg_backend_pid() % {COUNT_SHARDS};
  v_row_record jsonb; v_row_status text; v_row_expires float8; v_row_updated float8;
  v_inserted boolean := false;
  v_old jsonb; v_new jsonb; v_seen jsonb;
  v_key text; v_amount text; v_current text; v_sum text; v_event jsonb;
  v_status text; v_updated float8; v_i integer; v_payload text;
  v_parent text; v_at text;
  v_b_status text; v_b_ratio float8; v_a_status text; v_a_ratio float8;
  v_g_record jsonb; v_g_status text; v_g_expires float8; v_g_new jsonb; v_g_state text;
  v_children jsonb; v_counts bigint[]; v_total bigint; v_progress float8;
BEGIN
  -- The record's row, locked; a new id is inserted (a race for it: read it again).
  LOOP
    SELECT t.record, t.status, t.expires_at, t.updated_at
      INTO v_row_record, v_row_status, v_row_expires, v_row_updated
      FROM {{t}} AS t WHERE t.job_id = p_id FOR UPDATE;
    EXIT WHEN FOUND;
    IF p_fresh IS NULL THEN  -- the guard does not hold on no record
      applied := false; created := true;
      RETURN;
    END IF;
    v_status := COALESCE({{f_str}}(p_fresh, 'status'), '');
    INSERT INTO {{t}} AS t (job_id, record, status, updated_at, expires_at, parent, name)
    VALUES (p_id, p_fresh, v_status, COALESCE(p_updated, p_now), {_ttl("v_status")},
            {{f_str}}(p_fresh, 'parent'), {{f_str}}(p_fresh, 'name'))
    ON CONFLICT (job_id) DO NOTHING;
    IF FOUND THEN
      v_inserted := true;
      EXIT;
    END IF;
  END LOOP;

  IF v_inserted THEN
    v_new := p_fresh;
    v_updated := COALESCE(p_updated, p_now);
    {_shift("NULL", "v_status")}
  ELSE
    IF v_row_expires > p_now THEN
      v_old := v_row_record;
    END IF;
    -- _record.guard_holds, on the live record.
    IF NOT (CASE p_guard
        WHEN 'unfinished' THEN COALESCE({{f_str}}(v_old, 'status') IN ('queued', 'working'), false)
        WHEN 'not_cancelled' THEN v_old IS NULL OR NOT (
          jsonb_typeof((v_old ->> 'cancel')::jsonb) IS NOT DISTINCT FROM 'object'
          OR {{f_str}}(v_old, 'status') IS NOT DISTINCT FROM 'cancelled')
        WHEN 'absent' THEN v_old IS NULL
        ELSE true END) THEN
      applied := false; created := v_old IS NULL; cancel := {{f_pending}}(v_old);
      RETURN;
    END IF;
    -- The writer's last sequences (WRITES_KEY): a write re-sent applies once.
    IF p_writer IS NOT NULL THEN
      v_seen := (v_old ->> '')::jsonb;
      IF v_seen IS NULL OR jsonb_typeof(v_seen) <> 'object' THEN
        v_seen := jsonb_build_object();
      END IF;
      IF COALESCE((v_seen ->> p_writer)::bigint, 0) >= p_sequence THEN
        applied := false; created := v_old IS NULL; cancel := {{f_pending}}(v_old);
        RETURN;
      END IF;
      IF NOT v_seen ? p_writer
         AND (SELECT count(*) FROM jsonb_object_keys(v_seen)) >= {MAX_WRITERS} THEN
        v_seen := jsonb_build_object();
      END IF;
      v_seen := v_seen || jsonb_build_object(p_writer, p_sequence);
    END IF;
    -- _record.apply_change: removals, sets, increments, history.
    v_new := (COALESCE(v_old, jsonb_build_object()) - p_unset) || p_set;
    FOR v_key, v_amount IN SELECT i.key, i.value FROM jsonb_each_text(p_incr) AS i LOOP
      v_current := v_new ->> v_key;
      IF v_current ~ '^-?[0-9]+$' AND v_amount ~ '^-?[0-9]+$' THEN
        v_sum := (v_current::numeric + v_amount::numeric)::text;
        PERFORM v_sum::numeric::float8;  -- past a float's range: out of range, refused
      ELSIF v_current ~ '^-?[0-9]' THEN
        v_sum := {{f_float}}(v_current::float8 + v_amount::float8);  -- overflow: refused
      ELSE
        v_sum := v_amount;
      END IF;
      v_new := v_new || jsonb_build_object(v_key, v_sum);
    END LOOP;
    FOR v_event IN SELECT e FROM jsonb_array_elements(p_events) AS e LOOP
      v_new := {{f_append}}(v_new, v_event ->> 0, v_event ->> 1, p_limit);
    END LOOP;
    IF p_writer IS NOT NULL THEN
      v_new := v_new || jsonb_build_object('', v_seen::text);
    END IF;
    v_status := COALESCE({{f_str}}(v_new, 'status'), '');
    v_updated := COALESCE(p_updated, CASE WHEN v_old IS NOT NULL THEN v_row_updated END, p_now);
    UPDATE {{t}} AS t
       SET record = v_new, status = v_status, updated_at = v_updated,
           expires_at = {_ttl("v_status")},
           parent = {{f_str}}(v_new, 'parent'), name = {{f_str}}(v_new, 'name')
     WHERE t.job_id = p_id;
    {_shift("v_row_status", "v_status")}
  END IF;
  {_notify("p_id", "v_new")}
  applied := true;
  created := v_old IS NULL;
  cancel := {{f_pending}}(v_new);
  queued_at := {{f_queued}}(v_old, v_new);

  -- _rollup.move_groups: child first, then each ancestor, at most MAX_DEPTH.
  v_parent := {{f_str}}(v_new, 'parent');
  IF v_parent IS NOT NULL THEN  -- a record without a group moves none: no states
    IF v_old IS NOT NULL AND {{f_str}}(v_old, 'parent') IS NOT DISTINCT FROM v_parent THEN
      SELECT s.status, s.ratio INTO v_b_status, v_b_ratio FROM {{f_state}}(v_old) AS s;
    END IF;
    SELECT s.status, s.ratio INTO v_a_status, v_a_ratio FROM {{f_state}}(v_new) AS s;
  END IF;
  v_at := COALESCE({{f_str}}(v_new, 'updated_at'),
                   to_char(to_timestamp(p_now) AT TIME ZONE 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'));
  FOR v_level IN 1..__DEPTH__ LOOP
    EXIT WHEN v_parent IS NULL OR (v_b_status IS NOT DISTINCT FROM v_a_status
                                   AND v_b_ratio IS NOT DISTINCT FROM v_a_ratio);
    IF v_b_status = v_a_status THEN  -- a progress tick: the counts stay
      {_PROGRESS_MOVE}
      IF FOUND THEN
        {_notify("v_parent", "v_g_new")}
        EXIT;
      END IF;
    END IF;
    SELECT t.record, t.status, t.expires_at INTO v_g_record, v_g_status, v_g_expires
      FROM {{t}} AS t WHERE t.job_id = v_parent FOR UPDATE;
    EXIT WHEN NOT FOUND OR v_g_expires <= p_now;
    v_children := (v_g_record ->> 'children')::jsonb;
    EXIT WHEN v_children IS NULL OR jsonb_typeof(v_children) <> 'object';
    -- _rollup.roll_up
    v_counts := {_COUNTS};
    v_progress := CASE WHEN jsonb_typeof((v_g_record ->> 'progress')::jsonb) = 'number'
                       THEN (v_g_record ->> 'progress')::float8 ELSE 0.0 END;
    IF v_b_status IS NOT NULL THEN
      v_i := array_position(v_states, v_b_status);
      v_counts[v_i] := greatest(v_counts[v_i] - 1, 0);
      v_progress := v_progress - v_b_ratio;
    END IF;
    IF v_a_status IS NOT NULL THEN
      v_i := array_position(v_states, v_a_status);
      v_counts[v_i] := v_counts[v_i] + 1;
      v_progress := v_progress + v_a_ratio;
    END IF;
    -- v_counts: 1 cancelled, 2 completed, 3 failed, 4 queued, 5 working
    v_total := v_counts[1] + v_counts[2] + v_counts[3] + v_counts[4] + v_counts[5];
    v_g_state := CASE WHEN v_total <= 0 THEN 'queued'
                      WHEN v_counts[3] > 0 THEN 'failed'
                      WHEN v_counts[4] = v_total THEN 'queued'
                      WHEN v_counts[2] = v_total THEN 'completed'
                      WHEN v_counts[4] = 0 AND v_counts[5] = 0 THEN 'cancelled'
                      ELSE 'working' END;
    v_g_new := v_g_record || jsonb_build_object(
      'children', jsonb_build_object(
        'queued', v_counts[4], 'working', v_counts[5], 'completed', v_counts[2],
        'failed', v_counts[3], 'cancelled', v_counts[1])::text,
      'total', v_total::text,
      'progress', CASE WHEN v_total > 0 AND v_counts[4] = 0 AND v_counts[5] = 0
                       THEN v_total::text
                       ELSE {{f_float}}(least(greatest(v_progress, 0.0), v_total::float8)) END,
      'updated_at', to_jsonb(v_at)::text);
    IF v_g_state IS DISTINCT FROM {{f_str}}(v_g_record, 'status') THEN
      v_g_new := v_g_new || jsonb_build_object('status', to_jsonb(v_g_state)::text);
      IF v_g_state <> 'queued' AND NOT v_g_record ? 'started_at' THEN
        v_g_new := v_g_new || jsonb_build_object('started_at', to_jsonb(v_at)::text);
      END IF;
      IF v_g_state IN ({_FINISHED_SQL}) THEN
        v_g_new := v_g_new || jsonb_build_object('finished_at', to_jsonb(v_at)::text);
      END IF;
      v_g_new := {{f_append}}(v_g_new, v_g_state, v_at, p_limit);
    END IF;
    UPDATE {{t}} AS t
       SET record = v_g_new, status = v_g_state, updated_at = v_updated,
           expires_at = {_ttl("v_g_state")},
           parent = {{f_str}}(v_g_new, 'parent'), name = {{f_str}}(v_g_new, 'name')
     WHERE t.job_id = v_parent;
    {_shift("v_g_status", "v_g_state")}
    {_notify("v_parent", "v_g_new")}
    v_parent := {{f_str}}(v_g_new, 'parent');
    IF v_parent IS NOT NULL THEN  -- a top group: nothing above it to move
      SELECT s.status, s.ratio INTO v_b_status, v_b_ratio FROM {{f_state}}(v_g_record) AS s;
      SELECT s.status, s.ratio INTO v_a_status, v_a_ratio FROM {{f_state}}(v_g_new) AS s;
    END IF;
  END LOOP;

  -- The counts, last, in COUNTED's order (see the module's docstring on locks).
  FOR v_i IN 1..5 LOOP
    CONTINUE WHEN v_delta[v_i] = 0;
    INSERT INTO {{c}} AS c (status, shard, n) VALUES (v_states[v_i], v_shard, v_delta[v_i])
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
  END LOOP;
END
$$""".replace("__LIMIT__", str(NOTIFY_LIMIT)).replace("__DEPTH__", str(MAX_DEPTH))

# The counts' reads, planned without a sequential scan: a table fresh from a bulk
# load has no statistics yet, and the planner would read a million rows to find
# the few expired ones (or working ones) that its indexes give at once.
_PLANNED = "SET enable_seqscan = off SET max_parallel_workers_per_gather = 0"
# Every row counted, less the expired ones not yet purged (few, by the expiry index).
_COUNTED = f"""CREATE OR REPLACE FUNCTION {{f_counted}}(p_now float8)
RETURNS TABLE (status text, n bigint) LANGUAGE sql STABLE {_PLANNED} AS $$
  SELECT s.status, sum(s.n)::bigint FROM (
    SELECT c.status, c.n FROM {{c}} AS c
    UNION ALL
    SELECT t.status, -count(*) FROM {{t}} AS t WHERE t.expires_at <= p_now GROUP BY t.status
  ) AS s GROUP BY s.status
$$"""
_STALE = f"""CREATE OR REPLACE FUNCTION {{f_stale}}(p_before float8, p_now float8)
RETURNS bigint LANGUAGE sql STABLE {_PLANNED} AS $$
  SELECT count(*) FROM {{t}} AS t
  WHERE t.status = 'working' AND t.updated_at < p_before AND t.expires_at > p_now
$$"""

# Under the advisory lock of migrate(), in one transaction; each step is safe to repeat.
MIGRATE: Final = (
    TABLE,
    "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS parent text, ADD COLUMN IF NOT EXISTS name text",
    """CREATE TABLE IF NOT EXISTS {c} (
    status text NOT NULL,
    shard  integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (status, shard)
)""",
    # Every write that moves a status updates two of its rows: room on each page
    # for those updates (HOT, pruned in place) and a vacuum after every 1,000.
    """ALTER TABLE {c} SET (fillfactor = 10, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)""",
    _STR,
    _FLOAT,
    _PENDING,
    _STATE,
    _APPEND,
    _QUEUED,
    _WRITE,
    _COUNTED,
    _STALE,
    # A table of schema 1 (or one written by schema 1 code meanwhile): columns
    # filled from the records, counts from the rows. Writers wait (SHARE lock).
    "LOCK TABLE {t} IN SHARE MODE",
    """UPDATE {t} SET parent = {f_str}(record, 'parent'), name = {f_str}(record, 'name')
WHERE (record ? 'parent' OR record ? 'name')
  AND (parent IS DISTINCT FROM {f_str}(record, 'parent')
       OR name IS DISTINCT FROM {f_str}(record, 'name'))""",
    "DELETE FROM {c}",
    f"""INSERT INTO {{c}} (status, shard, n)
SELECT status, 0, count(*) FROM {{t}} WHERE status IN ({_COUNTED_SQL}) GROUP BY status""",
    "CREATE INDEX IF NOT EXISTS {i_status} ON {t} (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS {i_updated} ON {t} (updated_at)",
    "CREATE INDEX IF NOT EXISTS {i_expires} ON {t} (expires_at)",
    "CREATE INDEX IF NOT EXISTS {i_parent} ON {t} (parent, job_id) WHERE parent IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS {i_name} ON {t} (name, updated_at) WHERE name IS NOT NULL",
)

# The table's mark: the version, and a digest of what MIGRATE creates, so that a
# release that changes the function installs it (migrate() runs when it differs).
SCHEMA_MARKER: Final = (
    f"jobstatus schema {SCHEMA_VERSION} "
    f"({hashlib.sha256(''.join(MIGRATE).encode()).hexdigest()[:12]})"
)
MARK: Final = f"COMMENT ON TABLE {{t}} IS '{SCHEMA_MARKER}'"  # MIGRATE's last step

WRITE: Final = """SELECT applied, created, cancel, queued_at FROM {f_write}(
  %(id)s, %(fresh)s::jsonb, %(set)s::jsonb, %(incr)s::jsonb, %(unset)s::text[], %(guard)s,
  %(events)s::jsonb, %(history_limit)s, %(ttl)s, %(finished_ttl)s, %(updated)s, %(now)s,
  %(writer)s, %(sequence)s, %(channel)s)"""

READ: Final = "SELECT record FROM {t} WHERE job_id = %s AND expires_at > %s"
READ_MANY: Final = "SELECT job_id, record FROM {t} WHERE job_id = ANY(%s) AND expires_at > %s"
# A row leaves the counts with it (the shard of this backend: a sum is a sum).
_UNCOUNT = f"""INSERT INTO {{c}} AS c (status, shard, n)
SELECT g.status, mod(pg_backend_pid(), {COUNT_SHARDS}), -count(*) FROM gone AS g
WHERE g.status IN ({_COUNTED_SQL}) GROUP BY g.status ORDER BY g.status
ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n"""
DELETE: Final = f"""WITH gone AS (DELETE FROM {{t}} WHERE job_id = %s RETURNING status),
uncounted AS ({_UNCOUNT})
SELECT count(*) FROM gone"""
PURGE: Final = f"""WITH gone AS (
  DELETE FROM {{t}} WHERE expires_at <= %(now)s AND job_id IN (
    SELECT job_id FROM {{t}} WHERE expires_at <= %(now)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED
  ) RETURNING status
), uncounted AS ({_UNCOUNT})
SELECT count(*) FROM gone"""
LIST_ALL: Final = (
    "SELECT job_id, record FROM {t} WHERE expires_at > %s AND updated_at < %s "
    "ORDER BY updated_at DESC, job_id DESC LIMIT %s"
)
LIST_STATUS: Final = (
    "SELECT job_id, record FROM {t} WHERE status = %s AND expires_at > %s AND updated_at < %s "
    "ORDER BY updated_at DESC, job_id DESC LIMIT %s"
)
COUNT_BY_STATUS: Final = "SELECT status, n FROM {f_counted}(%s)"
COUNT_STALE: Final = "SELECT {f_stale}(%s, %s)"
CHILD_IDS: Final = "SELECT job_id FROM {t} WHERE parent = %s AND expires_at > %s ORDER BY job_id"
ANNOUNCE: Final = "SELECT pg_notify(%s, %s)"
DROP: Final = (
    "DROP TABLE IF EXISTS {t}",
    "DROP TABLE IF EXISTS {c}",
    *(f"DROP FUNCTION IF EXISTS {{{name}}}" for name in FUNCTIONS),
)


def find_query(*, status: str | None, name: str | None, id_prefix: str | None) -> str:
    """The statement of ``find`` for the filters given; its parameters are
    :func:`find_params`'s, in order.

    An id prefix is ``starts_with``: no index serves it in every collation, so it
    filters the newest-first walk of the ``updated_at`` index (or of the name's).
    """
    where = ["expires_at > %s", "updated_at < %s"]
    if status is not None:
        where.append("status = %s")
    if name is not None:
        where.append("name = %s")
    if id_prefix is not None:
        where.append("starts_with(job_id, %s)")
    return (
        f"SELECT job_id, record FROM {{t}} WHERE {' AND '.join(where)} "
        "ORDER BY updated_at DESC, job_id DESC LIMIT %s"
    )


def find_params(
    *,
    now: float,
    upper: float,
    status: str | None,
    name: str | None,
    id_prefix: str | None,
    limit: int,
) -> list[object]:
    """The parameters of :func:`find_query`'s statement."""
    given = [value for value in (status, name, id_prefix) if value is not None]
    return [now, upper, *given, limit]


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


def object_names(table: str) -> dict[str, str]:
    """The names of the table's counts table, indexes and functions, keyed as OBJECTS."""
    return {key: name.format(table=table) for key, name in OBJECTS.items()}


def cancel_channel(table: str) -> str:
    """The channel cancel requests are announced on: not the table's own, so a
    process listening for cancels is not sent every write."""
    return f"{table}_cancels"


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


def write_params(job_id: str, change: Change, now: float, channel: str | None) -> dict[str, Any]:
    """The parameters of WRITE (``channel`` None: no NOTIFY).

    The record a new id gets is computed here (the merge into nothing); the
    function merges into a row that exists. None when the guard needs a record.

    Raises:
        WriteRefused: an amount is not a number a record can hold.
        ValueError: an unknown guard.
    """
    amounts = _amounts(change)
    fresh = apply_write(None, change)
    return {
        "id": job_id,
        "fresh": encode_record(fresh) if fresh is not None else None,
        "set": encode_record(change.set),
        "incr": dumps({encode_key(key): dumps(amount) for key, amount in amounts}),
        "unset": [encode_key(key) for key in change.unset],
        "guard": change.guard,
        "events": dumps([list(event) for event in change.events]),
        "history_limit": int(change.history_limit),
        "ttl": float(change.ttl),
        "finished_ttl": float(change.finished_ttl),
        "updated": parse_iso(change.set.get("updated_at")),
        "now": now,
        "writer": change.origin[0] if change.origin else None,
        "sequence": change.origin[1] if change.origin else 0,
        "channel": channel,
    }


def written(row: Sequence[Any]) -> Written:
    """What the write function's answer ``(applied, created, cancel, queued_at)`` says."""
    applied, created, cancel, queued_at = row
    request = loads(cancel) if cancel is not None else None
    return Written(
        applied=bool(applied),
        created=bool(created),
        cancel=request if isinstance(request, dict) else None,
        queued_at=queued_at,
    )


def _amounts(change: Change) -> list[tuple[str, float]]:
    for key, amount in change.incr.items():
        refuse_unstorable(key, amount)
    return list(change.incr.items())


def counts_of(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """``count_by_status``'s answer from COUNT_BY_STATUS's rows, every state present."""
    counts = dict.fromkeys(STATES, 0)
    for status, count in rows:
        if status in counts:
            counts[status] = max(int(count), 0)
    return counts


def cancel_payload(job_id: str, request: Record) -> str:
    """What announce_cancel sends: ``<job id>\\n<request as JSON>``."""
    return f"{job_id}\n{dumps(request)}"


def decode_cancel(payload: str) -> tuple[str, Record] | None:
    """``(job_id, request)`` from an announcement; None for one this store did not send."""
    job_id, newline, text = payload.partition("\n")
    if not newline:
        return None
    try:
        request = loads(text)
    except ValueError:
        return None
    return (job_id, request) if isinstance(request, dict) else None


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
