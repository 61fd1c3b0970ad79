"""What the Redis and Redis Cluster stores share and that does no I/O.

The key layout, the Lua scripts, how a :class:`Change` becomes script
arguments, how a hash becomes a record and how the listing merges index pages.
The store modules only move bytes.

Key layout (``P`` is the prefix, ``T`` empty on plain Redis and a hash tag
``{bN}`` on Redis Cluster)::

    P T r:<id>          hash: one field per record key, its value the JSON text
    P T x:all           sorted set of ids, scored by updated_at (epoch seconds)
    P T x:s:<status>    the same, one per status
    P T x:exp           sorted set of ids, scored by expiry (epoch milliseconds)
    P T c:<id>          pub/sub channel: every write publishes the record as JSON

Record keys all carry ``r:`` right after the prefix (and tag), index keys
``x:``, so no id can name an index key, and ids go in keys as they are (Redis
keys are binary-safe), so no two ids share a key.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring as _json_string
from typing import Any, Final

from .._record import (
    MAX_WRITERS,
    STATES,
    Change,
    Record,
    dumps,
    loads_record,
    parse_iso,
    refuse_unstorable,
)
from . import _url as url
from .base import SKIPPED, Written

DEFAULT_PREFIX: Final = "jobstatus:"
MAX_PREFIX_LENGTH: Final = 200
READ_CHUNK: Final = 5_000  # ids per pipeline: 10,000 members are two round trips
PRUNE_BATCH: Final = 32  # expired index entries a write removes, so no write stalls
MAX_INT_DIGITS: Final = 18  # HINCRBY works on 64-bit ints; longer ones go through floats
REBUILD_LIVE: Final = 10_000  # a sweep rebuilds indexes holding at most this many live ids
SWEEP_CHUNK: Final = 1_000  # dead ids per sweep call

# A write, atomically: merge the set fields, apply the increments, refresh the
# expiry from the resulting status, keep the indexes in step, drop a few expired
# index entries and publish the whole record to anyone subscribed. It answers
# {applied, created} (see base.Written), or refuses before writing anything:
# a script that fails half-way keeps what it wrote, so every check comes first.
WRITE_SCRIPT: Final = """
local record, all, exp = KEYS[1], KEYS[2], KEYS[3]
local by_status = {['"queued"'] = KEYS[4], ['"working"'] = KEYS[5],
                   ['"completed"'] = KEYS[6], ['"failed"'] = KEYS[7],
                   ['"cancelled"'] = KEYS[8]}
local member, channel = ARGV[1], ARGV[2]
local created = redis.call('EXISTS', record) == 0 and 1 or 0
local writer = ARGV[7]
local seen
if writer ~= '' then  -- a write that may be re-sent: apply it once (see WRITES_KEY)
  local stored = redis.call('HGET', record, '')
  seen = stored and cjson.decode(stored) or {}
  if (tonumber(seen[writer]) or 0) >= tonumber(ARGV[8]) then return {0, 0} end
end
local set_last = 8 + 2 * tonumber(ARGV[6])
local setting = {}
for i = 9, set_last, 2 do setting[ARGV[i]] = ARGV[i + 1] end
for i = set_last + 1, #ARGV, 3 do  -- SPEC 1: a sum that is not finite is never stored
  local field, amount, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = tonumber(setting[field] or redis.call('HGET', record, field) or '')
  if current and not (kind == 'i' and math.abs(current) < 1e17) then
    local sum = current + tonumber(amount)
    if sum ~= sum or sum == math.huge or sum == -math.huge then
      return redis.error_reply('REFUSED the sum of ' .. cjson.encode(field) ..
                               ' would not be a finite number')
    end
  end
end
if writer ~= '' then
  if seen[writer] == nil then
    local writers = 0
    for _ in pairs(seen) do writers = writers + 1 end
    if writers >= %(writers)d then seen = {} end
  end
  seen[writer] = tonumber(ARGV[8])
  redis.call('HSET', record, '', cjson.encode(seen))
end
local old_status = redis.call('HGET', record, 'status')
local status = old_status
local i, last = 9, set_last
if last > 8 then
  local fields = {}
  while i < last do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'status' then status = ARGV[i + 1] end
    i = i + 2
    if #fields >= 1000 or i >= last then  -- unpack() is limited to a few thousand values
      redis.call('HSET', record, unpack(fields))
      fields = {}
    end
  end
end
while i < #ARGV do
  local field, amount, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('HGET', record, field)
  if not current or not tonumber(current) then
    redis.call('HSET', record, field, amount)
  elseif kind == 'i' and string.match(current, '^-?%d+$') and #current <= 18 then
    redis.call('HINCRBY', record, field, amount)
  else
    local sum = redis.call('HINCRBYFLOAT', record, field, amount)
    if not string.find(sum, '[%.eEn]') then
      redis.call('HSET', record, field, sum .. '.0')
    end
  end
  if field == 'status' then status = redis.call('HGET', record, field) end
  i = i + 3
end
local ttl = ARGV[3]
if status == '"completed"' or status == '"failed"' or status == '"cancelled"' then
  ttl = ARGV[4]
end
redis.call('PEXPIRE', record, ttl)
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local score = ARGV[5]
if score == '' then
  score = redis.call('ZSCORE', all, member) or
          string.format('%d.%06d', tonumber(now[1]), tonumber(now[2]))
end
if old_status and by_status[old_status] and old_status ~= status then
  redis.call('ZREM', by_status[old_status], member)
end
if status and by_status[status] then
  redis.call('ZADD', by_status[status], score, member)
end
redis.call('ZADD', all, score, member)
redis.call('ZADD', exp, string.format('%.0f', now_ms + tonumber(ttl)), member)
local gone = redis.call('ZRANGEBYSCORE', exp, '-inf', now_ms, 'LIMIT', 0, %(prune)d)
for _, id in ipairs(gone) do
  for k = 2, 8 do redis.call('ZREM', KEYS[k], id) end
end
if redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0 then
  local flat = redis.call('HGETALL', record)
  local parts = {}
  for k = 1, #flat, 2 do
    if flat[k] ~= '' then parts[#parts + 1] = cjson.encode(flat[k]) .. ':' .. flat[k + 1] end
  end
  redis.call('PUBLISH', channel, '{' .. table.concat(parts, ',') .. '}')
end
return {1, created}
""".replace("%(prune)d", str(PRUNE_BATCH)).replace("%(writers)d", str(MAX_WRITERS))

# A delete: the record and its index entries go together.
DELETE_SCRIPT: Final = """
redis.call('DEL', KEYS[1])
for k = 2, 8 do redis.call('ZREM', KEYS[k], ARGV[1]) end
"""


class KeyLayout:
    """Names the keys of one store: ``prefix`` + optional hash tag + kind + id."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def tag(self, job_id: str) -> str:
        """The hash tag that keeps one job's keys in one slot ('' on plain Redis)."""
        return ""

    def record(self, job_id: str) -> str:
        """The key of the job's hash."""
        return f"{self.prefix}{self.tag(job_id)}r:{job_id}"

    def channel(self, job_id: str) -> str:
        """The pub/sub channel the write script publishes the job's record on."""
        return f"{self.prefix}{self.tag(job_id)}c:{job_id}"

    def indexes(self, tag: str) -> list[str]:
        """The index keys under one tag: all, expiry, then one per status in STATES order."""
        base = f"{self.prefix}{tag}x:"
        return [f"{base}all", f"{base}exp", *(f"{base}s:{state}" for state in STATES)]

    def script_keys(self, job_id: str) -> list[str]:
        """KEYS for the write and delete scripts: the record, then its indexes."""
        return [self.record(job_id), *self.indexes(self.tag(job_id))]

    def sweep_keys(self, tag: str, job_ids: Sequence[str]) -> list[str]:
        """KEYS for the sweep script: the tag's indexes, its scratch key, the ids' records."""
        scratch = f"{self.prefix}{tag}x:scratch"
        return [*self.indexes(tag), scratch, *(self.record(job_id) for job_id in job_ids)]

    def listing_keys(self, status: str | None) -> list[str]:
        """Every index to scan when listing ``status`` (None: all statuses)."""
        return [self.index_of(tag, status) for tag in self.all_tags()]

    def all_tags(self) -> list[str]:
        """Every tag a record can have: each has its own indexes."""
        return [""]

    def index_of(self, tag: str, status: str | None) -> str:
        """The listing index of ``status`` (None: all jobs) under ``tag``."""
        kind = "all" if status is None else f"s:{status}"
        return f"{self.prefix}{tag}x:{kind}"


# A sweep of one tag's indexes, run when a listing met ids whose records are
# gone (expired, most often: writes prune only a few expired entries each, so a
# store left idle past its records' lifetime keeps them all). When few records
# are still alive the indexes are rebuilt from them, so a million expired
# entries cost one call instead of a walk past each; otherwise the dead ids
# given are removed, each only if its record is still absent.
# KEYS: the seven index keys of the tag (as KeyLayout.indexes), a scratch key of
# the same tag, then the record key of each id in ARGV[2:].
# ARGV: the most live ids to rebuild from, then the dead ids.
SWEEP_SCRIPT: Final = """
local exp = KEYS[2]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local live = redis.call('ZCOUNT', exp, '(' .. now_ms, '+inf')
if live <= tonumber(ARGV[1]) and live < redis.call('ZCARD', exp) then
  local ids = redis.call('ZRANGEBYSCORE', exp, '(' .. now_ms, '+inf')
  local scratch = KEYS[8]
  for k = 1, 7 do
    redis.call('DEL', scratch)
    for _, id in ipairs(ids) do
      local score = redis.call('ZSCORE', KEYS[k], id)
      if score then redis.call('ZADD', scratch, score, id) end
    end
    redis.call('UNLINK', KEYS[k])
    if redis.call('EXISTS', scratch) == 1 then redis.call('RENAME', scratch, KEYS[k]) end
  end
  return -1
end
local removed = 0
for n = 2, #ARGV do
  if redis.call('EXISTS', KEYS[7 + n]) == 0 then
    for k = 1, 7 do redis.call('ZREM', KEYS[k], ARGV[n]) end
    removed = removed + 1
  end
end
return removed
"""


_decode = json.JSONDecoder().decode

URL_OPTIONS: Final = {"prefix": url.text, "timeout": url.seconds}


def _amount_text(amount: float) -> tuple[str, str]:
    if isinstance(amount, int):
        return str(amount), "i" if len(str(abs(amount))) <= MAX_INT_DIGITS else "f"
    return dumps(amount), "f"


def write_args(job_id: str, channel: str, change: Change) -> list[str | int]:
    """ARGV for the write script (see WRITE_SCRIPT)."""
    updated = parse_iso(change.set.get("updated_at"))
    args: list[str | int] = [
        job_id,
        channel,
        _milliseconds(change.ttl),
        _milliseconds(change.finished_ttl),
        "" if updated is None else f"{updated:.6f}",
        len(change.set),
        *(change.origin or ("", 0)),
    ]
    for key, value in change.set.items():
        args += [key, dumps(value)]
    for key, amount in change.incr.items():
        refuse_unstorable(key, amount)
        text, kind = _amount_text(amount)
        args += [key, text, kind]
    return args


REFUSED: Final = "REFUSED"  # the first word of the write script's refusals


def written(reply: Any) -> Written:
    """What the write script's reply ``{applied, created}`` says."""
    applied, created = (int(flag) for flag in reply)
    return Written(created=bool(created)) if applied else SKIPPED


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def decode_hash(raw: Mapping[Any, Any] | None) -> Record | None:
    """A record from HGETALL's answer (bytes or str), or None for a missing key."""
    if not raw:
        return None
    # One JSON document decodes about three times faster than a loads() per field.
    if _bytes_answer(raw):
        fields = [_key_json(key) + value for key, value in raw.items() if key]
        record: Record = _decode((b"{" + b",".join(fields) + b"}").decode("utf-8"))
    else:  # a client made with decode_responses=True
        fields = [f"{_json_string(key)}:{value}" for key, value in raw.items() if key]
        record = _decode("{" + ",".join(fields) + "}")
    return record


def decode_hashes(raws: Sequence[Mapping[Any, Any] | None]) -> list[Record | None]:
    """Records from many HGETALL answers, decoded as one JSON document (faster still)."""
    if not all(not raw or _bytes_answer(raw) for raw in raws):
        return [decode_hash(raw) for raw in raws]
    objects = [
        b"{" + b",".join([_key_json(key) + value for key, value in raw.items() if key]) + b"}"
        if raw
        else b"null"
        for raw in raws
    ]
    records: list[Record | None] = _decode((b"[" + b",".join(objects) + b"]").decode("utf-8"))
    return records


def _bytes_answer(raw: Mapping[Any, Any]) -> bool:
    return isinstance(next(iter(raw)), bytes)


_key_texts: dict[bytes, bytes] = {}  # field name -> its JSON text and a colon; names repeat


def _key_json(key: bytes) -> bytes:
    text = _key_texts.get(key)
    if text is None:
        if len(_key_texts) > 10_000:
            _key_texts.clear()
        text = _key_texts[key] = _json_string(key.decode("utf-8")).encode("utf-8") + b":"
    return text


def decode_message(data: bytes | str) -> Record:
    """A record from a published message."""
    return loads_record(data)


def cut(pages: Sequence[Sequence[tuple[bytes | str, float]]], size: int) -> tuple[Any, ...] | None:
    """The (score, id) below which a merge of index pages may miss entries.

    Each page holds the first ``size`` entries of one index, newest first; an
    index that gave a full page may hold more entries after its last one.
    None when every index was read to its end.
    """
    ends = [(page[-1][1], page[-1][0]) for page in pages if len(page) >= size]
    return max(ends) if ends else None


def merge_pages(
    pages: Sequence[Sequence[tuple[bytes | str, float]]], size: int
) -> tuple[list[str], bool]:
    """Ids from all pages, newest first, down to where every page is still complete.

    Returns the ids and whether the result is complete (every index exhausted
    down to the last id returned).
    """
    bound = cut(pages, size)
    merged = heapq.merge(
        *([(score, member) for member, score in page] for page in pages), reverse=True
    )
    ids = [_text(member) for score, member in merged if bound is None or (score, member) >= bound]
    return unique(ids), bound is None


def unique(ids: Iterable[str]) -> list[str]:
    """The ids in order, without repeats."""
    return list(dict.fromkeys(ids))


def keep_listed(
    pairs: Iterable[tuple[str, Record | None]], status: str | None, before: float | None
) -> list[tuple[str, Record]]:
    """Drop ids whose record is gone or no longer matches (indexes lag by design)."""
    kept = []
    for job_id, record in pairs:
        if record is None:
            continue
        if status is not None and record.get("status") != status:
            continue
        updated = parse_iso(record.get("updated_at"))
        if before is not None and updated is not None and updated >= before:
            continue
        kept.append((job_id, record))
    return kept


def dead_by_tag(
    layout: KeyLayout, ids: Sequence[str], records: Sequence[Record | None]
) -> list[tuple[str, list[str]]]:
    """The ids whose record was missing, grouped by tag in chunks of SWEEP_CHUNK."""
    groups: dict[str, list[str]] = {}
    for job_id, record in zip(ids, records, strict=True):
        if record is None:
            groups.setdefault(layout.tag(job_id), []).append(job_id)
    return [
        (tag, dead[start : start + SWEEP_CHUNK])
        for tag, dead in groups.items()
        for start in range(0, len(dead), SWEEP_CHUNK)
    ]


def upper_bound(before: float | None) -> str:
    """ZREVRANGEBYSCORE's max for ``before`` (exclusive)."""
    return "+inf" if before is None else f"({before!r}"


class ListingPlan:
    """The steps of one ``list_recent``, without I/O: both sync and async stores drive it.

    Each turn the store reads the head (``size`` entries) of every index in
    ``keys`` and gives the pages to :meth:`take_pages`, then reads the records
    of the ids it returns and gives them to :meth:`take_records`, which
    answers the listing or None to go again with pages twice as long (when
    entries whose records are gone or changed left it short).
    """

    def __init__(
        self, layout: KeyLayout, status: str | None, limit: int, before: float | None
    ) -> None:
        self.keys = layout.listing_keys(status)
        self.status, self.limit, self.before = status, limit, before
        self.max_score = upper_bound(before)
        # Entries spread over the indexes, so each needs only a share of the limit at first.
        self.size = min(limit, max(16, 2 * -(-limit // len(self.keys)))) + 8
        self._found: dict[str, Record | None] = {}
        self._ids: list[str] = []
        self._complete = False

    def take_pages(self, pages: Sequence[Sequence[tuple[bytes | str, float]]]) -> list[str]:
        """Merge the pages; return the ids whose records must be read."""
        self._ids, self._complete = merge_pages(pages, self.size)
        return [job_id for job_id in self._ids if job_id not in self._found]

    def take_records(
        self, ids: Sequence[str], records: Sequence[Record | None]
    ) -> list[tuple[str, Record]] | None:
        """The listing, or None when another, longer turn is needed."""
        self._found.update(zip(ids, records, strict=True))
        pairs = ((job_id, self._found[job_id]) for job_id in self._ids)
        listed = keep_listed(pairs, self.status, self.before)
        if len(listed) >= self.limit or self._complete:
            return listed[: self.limit]
        self.size *= 2
        return None
