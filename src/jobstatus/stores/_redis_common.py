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
    P T x:ids           sorted set of ids, all scored 0: byte order, for id prefixes
    P T x:n:<name>      sorted set of the ids of jobs named <name>, scored by updated_at
    P T x:p:<group>     sorted set of the ids of <group>'s children, scored 0
    P T c:<id>          pub/sub channel: every write publishes the record as JSON
    P x:cancel          pub/sub channel: cancel requests, announced store-wide
    P T l:<group>       Redis Cluster: hash, each child's last counted state
    P T n:<id>          Redis Cluster: the number of the job's last group move

``x:all``, ``x:exp``, ``x:s:*`` and ``x:ids`` lose an id as soon as its record
expires (each write drops a few such entries; a count drops them all first);
``x:n:*`` and ``x:p:*`` are pruned when read (a search or ``child_ids`` drops
the ids whose records are gone).

Record keys all carry ``r:`` right after the prefix (and tag), index keys
``x:``, so no id can name an index key, and ids go in keys as they are (Redis
keys are binary-safe), so no two ids share a key.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_string
from typing import Any, ClassVar, Final

from .._record import (
    MAX_WRITERS,
    STATES,
    Change,
    Record,
    dumps,
    guard_holds,
    loads,
    loads_record,
    parse_iso,
    refuse_unstorable,
    utc_now_iso,
)
from .._rollup import MAX_DEPTH
from . import _url as url
from .base import Written

DEFAULT_PREFIX: Final = "jobstatus:"
MAX_PREFIX_LENGTH: Final = 200
READ_CHUNK: Final = 5_000  # ids per pipeline: 10,000 members are two round trips
PRUNE_BATCH: Final = 32  # expired index entries a write removes, so no write stalls
MAX_INT_DIGITS: Final = 18  # HINCRBY works on 64-bit ints; longer ones go through floats
COUNT_BATCH: Final = 10_000  # expired index entries a count drops per call
REBUILD_LIVE: Final = 10_000  # a sweep rebuilds indexes holding at most this many live ids
SWEEP_CHUNK: Final = 1_000  # dead ids per sweep call

# Lua shared by the scripts below: the record's JSON texts, states, history and
# the roll-up of one child's move into its group (the arithmetic of _rollup.roll_up).
# Every record field holds a value's JSON text; statuses are compared as texts.
# Index keys of one tag, in the order of KeyLayout.indexes: all, exp, one per
# status (STATES order), ids.
LUA_COMMON: Final = r"""
local STATES = {'queued', 'working', 'completed', 'failed', 'cancelled'}
local NAME = {['"queued"'] = 'queued', ['"working"'] = 'working',
              ['"completed"'] = 'completed', ['"failed"'] = 'failed',
              ['"cancelled"'] = 'cancelled'}
local SLOT = {queued = 3, working = 4, completed = 5, failed = 6, cancelled = 7}
local FINISHED = {completed = true, failed = true, cancelled = true}

local function clock()
  local now = redis.call('TIME')
  local s, us = tonumber(now[1]), tonumber(now[2])
  return s * 1000 + math.floor(us / 1000), s * 1000000 + us, now
end

-- The JSON text of a float that reads back as the same float (a '.0' if integral).
local function num(x)
  local s
  for _, form in ipairs({'%.15g', '%.16g', '%.17g'}) do
    s = string.format(form, x)
    if tonumber(s) == x then break end
  end
  if not string.find(s, '[%.eEn]') then s = s .. '.0' end
  return s
end

local function text_of(value)  -- a Lua string decoded from a JSON string text, else nil
  if value and string.sub(value, 1, 1) == '"' then return cjson.decode(value) end
  return nil
end

-- The top-level element texts of a JSON array text (no decoding: exact).
local function elements(text)
  local out = {}
  if not text or string.sub(text, 1, 1) ~= '[' then return out end
  local depth, start, pos = 0, 2, 2
  while true do
    local i = string.find(text, '[%[%]{}",]', pos)
    if not i then return out end
    local c = string.sub(text, i, i)
    if c == '"' then
      local j = i + 1
      while true do
        local k = string.find(text, '["\\]', j)
        if not k then return out end
        if string.sub(text, k, k) == '\\' then j = k + 2 else j = k + 1 break end
      end
      pos = j
    elseif c == '[' or c == '{' then
      depth = depth + 1
      pos = i + 1
    elseif c == ']' or c == '}' then
      if depth == 0 then
        local piece = string.sub(text, start, i - 1)
        if string.find(piece, '%S') then out[#out + 1] = piece end
        return out
      end
      depth = depth - 1
      pos = i + 1
    else
      if depth == 0 then
        out[#out + 1] = string.sub(text, start, i - 1)
        start = i + 1
      end
      pos = i + 1
    end
  end
end

local function entry(event, at, attempts)
  local attempt = '0'
  if attempts and string.match(attempts, '^-?%d+$') then attempt = attempts end
  return '{"status":' .. event .. ',"at":' .. at .. ',"attempt":' .. attempt .. '}'
end

local function joined(items, limit)
  local first = math.max(1, #items - limit + 1)
  return '[' .. table.concat(items, ',', first, #items) .. ']'
end

-- What a record adds to its group (see _rollup.state_of): a status name and a ratio.
local function state(status, progress, total)
  local name = NAME[status or '']
  if not name then return nil, nil end
  if FINISHED[name] then return name, 1.0 end
  local p, t = tonumber(progress or ''), tonumber(total or '')
  if t and t > 0 and p then return name, math.min(math.max(p / t, 0.0), 1.0) end
  return name, 0.0
end

local function pending(status, cancel)
  if (status == '"queued"' or status == '"working"') and cancel and
     string.sub(cancel, 1, 1) == '{' then
    return cancel
  end
  return ''
end

local function publish(key, channel)
  if redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0 then
    local flat = redis.call('HGETALL', key)
    local parts = {}
    for k = 1, #flat, 2 do
      if flat[k] ~= '' then parts[#parts + 1] = cjson.encode(flat[k]) .. ':' .. flat[k + 1] end
    end
    redis.call('PUBLISH', channel, '{' .. table.concat(parts, ',') .. '}')
  end
end

local function keep_indexes(idx, member, old_name, new_name, score, expires_at)
  if old_name and old_name ~= new_name then redis.call('ZREM', idx[SLOT[old_name]], member) end
  if new_name then redis.call('ZADD', idx[SLOT[new_name]], score, member) end
  redis.call('ZADD', idx[1], score, member)
  redis.call('ZADD', idx[2], string.format('%.0f', expires_at), member)
  redis.call('ZADD', idx[8], 0, member)
end

local function prune(idx, now_ms, limit)
  local gone = redis.call('ZRANGEBYSCORE', idx[2], '-inf', '(' .. now_ms, 'LIMIT', 0, limit)
  for _, id in ipairs(gone) do
    for k = 1, 8 do redis.call('ZREM', idx[k], id) end
  end
  return #gone
end

-- _rollup.roll_up on the group g = {key, id, idx, base, channel, score, ttl, fttl, now_ms}:
-- false when it is no group; else true, its state before and after, its parent text.
local function roll(g, old_name, old_ratio, new_name, new_ratio, at, limit)
  local got = redis.call('HMGET', g.key, 'children', 'status', 'progress', 'total',
                         'attempts', 'name', 'parent')
  local children, status_text, progress_text = got[1], got[2] or nil, got[3] or nil
  if not children or string.sub(children, 1, 1) ~= '{' then return false end
  local stored = cjson.decode(children)
  local counts = {}
  for _, s in ipairs(STATES) do
    local v = stored[s]
    counts[s] = (type(v) == 'number' and v >= 1) and math.floor(v) or 0
  end
  local b_name, b_ratio = state(status_text, progress_text, got[4] or nil)
  local current = tonumber(progress_text or '') or 0.0
  if old_name then
    counts[old_name] = math.max(counts[old_name] - 1, 0)
    current = current - old_ratio
  end
  if new_name then
    counts[new_name] = counts[new_name] + 1
    current = current + new_ratio
  end
  local total, parts = 0, {}
  for _, s in ipairs(STATES) do
    total = total + counts[s]
    parts[#parts + 1] = '"' .. s .. '":' .. string.format('%d', counts[s])
  end
  local status = 'working'
  if total == 0 or counts.queued == total then status = 'queued'
  elseif counts.failed > 0 then status = 'failed'
  elseif counts.completed == total then status = 'completed'
  elseif counts.queued == 0 and counts.working == 0 then status = 'cancelled' end
  local progress
  if total > 0 and counts.queued == 0 and counts.working == 0 then
    progress = string.format('%d', total)
  else
    progress = num(math.min(math.max(current, 0.0), total))
  end
  local total_text = string.format('%d', total)
  local fields = {'children', '{' .. table.concat(parts, ',') .. '}', 'total', total_text,
                  'progress', progress, 'updated_at', at}
  local new_text = '"' .. status .. '"'
  if new_text ~= status_text then
    fields[#fields + 1] = 'status'
    fields[#fields + 1] = new_text
    if status ~= 'queued' and redis.call('HEXISTS', g.key, 'started_at') == 0 then
      fields[#fields + 1] = 'started_at'
      fields[#fields + 1] = at
    end
    if FINISHED[status] then
      fields[#fields + 1] = 'finished_at'
      fields[#fields + 1] = at
    end
    if limit > 0 then
      local items = elements(redis.call('HGET', g.key, 'history'))
      items[#items + 1] = entry(new_text, at, got[5] or nil)
      fields[#fields + 1] = 'history'
      fields[#fields + 1] = joined(items, limit)
    end
  end
  redis.call('HSET', g.key, unpack(fields))
  local ttl = FINISHED[status] and g.fttl or g.ttl
  redis.call('PEXPIRE', g.key, ttl)
  keep_indexes(g.idx, g.id, NAME[status_text or ''], status, g.score, g.now_ms + ttl)
  local name = text_of(got[6] or nil)
  if name then redis.call('ZADD', g.base .. 'x:n:' .. name, g.score, g.id) end
  publish(g.key, g.channel)
  local a_name, a_ratio = state(new_text, progress, total_text)
  return true, b_name, b_ratio, a_name, a_ratio, got[7] or nil, ttl
end
"""

# A write, atomically (one EVALSHA): the guard on the live record, the origin's
# de-duplication, then the removals, the set fields, the increments (a sum that
# is not finite refused before anything is written: a script that fails half-way
# keeps what it wrote, so every check comes first), the history entries, the
# expiry from the resulting status, the indexes (status, name, parent, ids), a
# few expired index entries dropped, the record published to its watchers, and
# the group roll-up. On plain Redis ("chain") the script moves the groups itself,
# up to MAX_DEPTH levels; on a cluster ("defer") it numbers the move and answers
# it, for MOVE_SCRIPT to apply in the group's slot.
# KEYS: the record, then its tag's indexes (KeyLayout.indexes).
# ARGV: id, channel, ttl ms, finished ttl ms, score ('' keep), writer, sequence,
# guard, history limit, key base (prefix + tag), mode, prefix, a fallback time
# (JSON), then how many set / unset / events, then the set pairs, the unset
# keys, the events (status JSON, at JSON) and the increments (key, amount, kind).
# Answers {applied, created, cancel JSON or '', queued_at or ''} and, for a
# deferred move, {group id, move number, status name or '', ratio, at JSON}.
WRITE_SCRIPT: Final = (
    LUA_COMMON
    + r"""
local record = KEYS[1]
local idx = {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]}
local member, channel = ARGV[1], ARGV[2]
local writer, sequence, guard = ARGV[6], ARGV[7], ARGV[8]
local limit = tonumber(ARGV[9])
local base, mode, prefix, fallback_at = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local set_first = 17
local unset_first = set_first + 2 * tonumber(ARGV[14])
local events_first = unset_first + tonumber(ARGV[15])
local incr_first = events_first + 2 * tonumber(ARGV[16])
local exists = redis.call('EXISTS', record) == 1
local created = exists and 0 or 1
local old = {}
if exists then
  local got = redis.call('HMGET', record, 'status', 'cancel', 'parent', 'progress', 'total',
                         'name')
  old = {status = got[1] or nil, cancel = got[2] or nil, parent = got[3] or nil,
         progress = got[4] or nil, total = got[5] or nil, name = got[6] or nil}
end
local function skipped()
  local reply = {0, created, pending(old.status, old.cancel), ''}
  if mode == 'defer' and exists then  -- a write sent again: send its group's move again
    local group = text_of(old.parent)
    local number = redis.call('GET', base .. 'n:' .. member)
    if group and number then
      local name, ratio = state(old.status, old.progress, old.total)
      local at = redis.call('HGET', record, 'updated_at')
      if not (at and string.sub(at, 1, 1) == '"') then at = fallback_at end
      for _, v in ipairs({group, number, name or '', ratio and num(ratio) or '', at}) do
        reply[#reply + 1] = v
      end
    end
  end
  return reply
end
local cancelled = old.cancel and string.sub(old.cancel, 1, 1) == '{'
if guard == 'unfinished' and not (old.status == '"queued"' or old.status == '"working"') or
   guard == 'not_cancelled' and (cancelled or old.status == '"cancelled"') or
   guard == 'absent' and exists then
  return skipped()
end
local seen
if writer ~= '' then  -- a write that may be re-sent: apply it once (see WRITES_KEY)
  local stored = redis.call('HGET', record, '')
  seen = stored and cjson.decode(stored) or {}
  if (tonumber(seen[writer]) or 0) >= tonumber(sequence) then return skipped() end
end
local setting, unsetting = {}, {}
for i = set_first, unset_first - 1, 2 do setting[ARGV[i]] = ARGV[i + 1] end
for i = unset_first, events_first - 1 do unsetting[ARGV[i]] = true end
for i = incr_first, #ARGV, 3 do  -- SPEC 1: a sum that is not finite is never stored
  local field, amount, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = setting[field]
  if not current and not unsetting[field] then current = redis.call('HGET', record, field) end
  current = tonumber(current or '')
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
  seen[writer] = tonumber(sequence)
  redis.call('HSET', record, '', cjson.encode(seen))
end
if old.status == '"queued"' and setting['status'] == '"working"' then  -- a start
  local got = redis.call('HMGET', record, 'history', 'queued_at', 'attempts')
  old.history, old.queued_at, old.attempts = got[1] or nil, got[2] or nil, got[3] or nil
end
local status = old.status
if events_first > unset_first then
  redis.call('HDEL', record, unpack(ARGV, unset_first, events_first - 1))
  if unsetting['status'] then status = nil end
end
local i = set_first
while i < unset_first do
  local fields = {}
  while i < unset_first and #fields < 1000 do  -- unpack() takes a few thousand values at most
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'status' then status = ARGV[i + 1] end
    i = i + 2
  end
  redis.call('HSET', record, unpack(fields))
end
for j = incr_first, #ARGV, 3 do
  local field, amount, kind = ARGV[j], ARGV[j + 1], ARGV[j + 2]
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
end
if incr_first > events_first and limit > 0 then
  local got = redis.call('HMGET', record, 'history', 'attempts')
  local items = elements(got[1] or nil)
  for j = events_first, incr_first - 1, 2 do
    items[#items + 1] = entry(ARGV[j], ARGV[j + 1], got[2] or nil)
  end
  redis.call('HSET', record, 'history', joined(items, limit))
end
local ttl = ARGV[3]
if status == '"completed"' or status == '"failed"' or status == '"cancelled"' then
  ttl = ARGV[4]
end
redis.call('PEXPIRE', record, ttl)
if mode == 'defer' then redis.call('PEXPIRE', base .. 'l:' .. member, ttl) end
local now_ms, now_us, now = clock()
local score = ARGV[5]
if score == '' then
  score = redis.call('ZSCORE', idx[1], member) or
          string.format('%d.%06d', tonumber(now[1]), tonumber(now[2]))
end
keep_indexes(idx, member, NAME[old.status or ''], NAME[status or ''], score,
             now_ms + tonumber(ttl))
local after = redis.call('HMGET', record, 'name', 'parent', 'progress', 'total', 'cancel',
                         'updated_at')
local name, parent = after[1] or nil, after[2] or nil
if old.name ~= name and text_of(old.name) then
  redis.call('ZREM', base .. 'x:n:' .. text_of(old.name), member)
end
if text_of(name) then redis.call('ZADD', base .. 'x:n:' .. text_of(name), score, member) end
if old.parent ~= parent then
  if text_of(old.parent) then redis.call('ZREM', base .. 'x:p:' .. text_of(old.parent), member) end
  if text_of(parent) then redis.call('ZADD', base .. 'x:p:' .. text_of(parent), 0, member) end
end
prune(idx, now_ms, %(prune)d)
publish(record, channel)
local queued_at = ''
if old.status == '"queued"' and status == '"working"' then  -- see _rollup.queued_since
  local found = false
  local items = elements(old.history)
  for j = #items, 1, -1 do
    local ok, item = pcall(cjson.decode, items[j])
    if ok and type(item) == 'table' and item.status == 'queued' then
      if type(item.at) == 'string' then queued_at = item.at end
      found = true
      break
    end
  end
  local attempts = old.attempts
  if not found and (not attempts or attempts == '0' or attempts == '0.0' or
                    attempts == 'false' or attempts == 'null' or attempts == '""') then
    queued_at = text_of(old.queued_at) or ''
  end
end
local reply = {1, created, pending(status, after[5] or nil), queued_at}
local group = text_of(parent)
if not group then return reply end
local b_name, b_ratio
if exists and old.parent == parent then
  b_name, b_ratio = state(old.status, old.progress, old.total)
end
local a_name, a_ratio = state(status, after[3] or nil, after[4] or nil)
if b_name == a_name and b_ratio == a_ratio then return reply end
local at = after[6] or nil
if not (at and string.sub(at, 1, 1) == '"') then at = fallback_at end
if mode == 'defer' then
  local key = base .. 'n:' .. member
  local number = string.format('%d', math.max((tonumber(redis.call('GET', key) or '') or 0) + 1,
                                               now_us))
  redis.call('SET', key, number, 'PX', ttl)
  for _, v in ipairs({group, number, a_name or '', a_ratio and num(a_ratio) or '', at}) do
    reply[#reply + 1] = v
  end
  return reply
end
for _ = 1, %(depth)d do
  if not group or (b_name == a_name and b_ratio == a_ratio) then break end
  local g = {key = prefix .. 'r:' .. group, id = group, idx = idx, base = base,
             channel = prefix .. 'c:' .. group, score = score, ttl = tonumber(ARGV[3]),
             fttl = tonumber(ARGV[4]), now_ms = now_ms}
  local ok, gb_name, gb_ratio, ga_name, ga_ratio, gparent = roll(g, b_name, b_ratio, a_name,
                                                                 a_ratio, at, limit)
  if not ok then break end
  b_name, b_ratio, a_name, a_ratio, group = gb_name, gb_ratio, ga_name, ga_ratio, text_of(gparent)
end
return reply
""".replace("%(prune)d", str(PRUNE_BATCH))
    .replace("%(writers)d", str(MAX_WRITERS))
    .replace("%(depth)d", str(MAX_DEPTH))
)

# One child's move in its group's slot (Redis Cluster): a child and its group
# usually live on different slots, and a script touches one slot only. The group
# keeps, in a hash of its own slot (its ledger, ``l:<group>``), each child's last
# counted state and the number of the move that brought it: a move numbered no
# higher than the ledger's is one already applied (sent again) or overtaken (a
# later one came first), and is dropped; any other is applied from the ledger's
# state, not the child's, so a move lost between the two calls is made good by
# the next one. Answers {0} (nothing done), {1}, or {1, parent, number, status,
# ratio} when the group's own state moved and it has a group too.
# KEYS: the group's record, ledger and move number, then its tag's indexes.
# ARGV: child id, move number, status name ('' none), ratio, at JSON, ttl ms,
# finished ttl ms, history limit, score, the group's channel, key base, group id.
MOVE_SCRIPT: Final = (
    LUA_COMMON
    + r"""
local ledger = KEYS[2]
local child, number = ARGV[1], ARGV[2]
local counted = redis.call('HGET', ledger, child)
local old_name, old_ratio
if counted then
  local seen, name, ratio = string.match(counted, '^(%d+)|(%a*)|(.*)$')
  if seen and tonumber(seen) >= tonumber(number) then return {0} end
  if name and name ~= '' then old_name, old_ratio = name, tonumber(ratio) end
end
local new_name, new_ratio = nil, nil
if ARGV[3] ~= '' then new_name, new_ratio = ARGV[3], tonumber(ARGV[4]) end
local now_ms, now_us = clock()
local g = {key = KEYS[1], id = ARGV[12], base = ARGV[11], channel = ARGV[10], score = ARGV[9],
           ttl = tonumber(ARGV[6]), fttl = tonumber(ARGV[7]), now_ms = now_ms,
           idx = {KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]}}
local ok, b_name, b_ratio, a_name, a_ratio, gparent, ttl =
  roll(g, old_name, old_ratio, new_name, new_ratio, ARGV[5], tonumber(ARGV[8]))
if not ok then return {0} end
redis.call('HSET', ledger, child, number .. '|' .. ARGV[3] .. '|' .. ARGV[4])
local lives = redis.call('PTTL', KEYS[1])  -- the ledger lives as long as its group
if lives > 0 then redis.call('PEXPIRE', ledger, lives) end
local parent = text_of(gparent)
if not parent or (b_name == a_name and b_ratio == a_ratio) then return {1} end
local next_number = string.format('%d', math.max(
  (tonumber(redis.call('GET', KEYS[3]) or '') or 0) + 1, now_us))
redis.call('SET', KEYS[3], next_number, 'PX', ttl)
return {1, parent, next_number, a_name or '', a_ratio and num(a_ratio) or ''}
"""
)

# A delete: the record, its index entries and its group bookkeeping go together.
# KEYS: the record, then its tag's indexes. ARGV: the id, the key base.
DELETE_SCRIPT: Final = (
    LUA_COMMON
    + r"""
local got = redis.call('HMGET', KEYS[1], 'name', 'parent')
local base, member = ARGV[2], ARGV[1]
redis.call('DEL', KEYS[1], base .. 'l:' .. member, base .. 'n:' .. member)
for k = 2, 9 do redis.call('ZREM', KEYS[k], member) end
if text_of(got[1] or nil) then redis.call('ZREM', base .. 'x:n:' .. text_of(got[1]), member) end
if text_of(got[2] or nil) then redis.call('ZREM', base .. 'x:p:' .. text_of(got[2]), member) end
"""
)

# The live records' count per status (and the stale ones: working, updated
# before a cut) of one tag, from its indexes: expired entries are dropped first,
# at most ARGV[1] per call; {-1} asks to call again. KEYS: the tag's indexes.
# ARGV: the batch, the cut (epoch seconds, '' for none).
COUNT_SCRIPT: Final = (
    LUA_COMMON
    + r"""
local idx = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]}
local now_ms = clock()
if prune(idx, now_ms, tonumber(ARGV[1])) >= tonumber(ARGV[1]) then return {-1} end
local out = {}
for k = 3, 7 do out[#out + 1] = redis.call('ZCARD', KEYS[k]) end
if ARGV[2] ~= '' then out[#out + 1] = redis.call('ZCOUNT', KEYS[4], '-inf', '(' .. ARGV[2]) end
return out
"""
)

# Drop from a name or children index (KEYS[1]) the ids (ARGV) whose record
# (KEYS[2:]) is gone: such indexes are pruned when read, not when records expire.
PRUNE_SCRIPT: Final = """
local removed = 0
for n = 1, #ARGV do
  if redis.call('EXISTS', KEYS[n + 1]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[n])
    removed = removed + 1
  end
end
return removed
"""


class KeyLayout:
    """Names the keys of one store: ``prefix`` + optional hash tag + kind + id."""

    #: Whether a write leaves its group's move to a second call (Redis Cluster:
    #: a group's keys are on another slot than its children's).
    defers: ClassVar[bool] = False

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def tag(self, job_id: str) -> str:
        """The hash tag that keeps one job's keys in one slot ('' on plain Redis)."""
        return ""

    def base(self, tag: str) -> str:
        """What every key of ``tag`` starts with: the prefix and the tag."""
        return f"{self.prefix}{tag}"

    def record(self, job_id: str) -> str:
        """The key of the job's hash."""
        return f"{self.prefix}{self.tag(job_id)}r:{job_id}"

    def channel(self, job_id: str) -> str:
        """The pub/sub channel the write script publishes the job's record on."""
        return f"{self.prefix}{self.tag(job_id)}c:{job_id}"

    def cancel_channel(self) -> str:
        """The store-wide pub/sub channel cancel requests are announced on."""
        return f"{self.prefix}x:cancel"

    def indexes(self, tag: str) -> list[str]:
        """The index keys under one tag: all, expiry, one per status in STATES order, ids."""
        base = f"{self.prefix}{tag}x:"
        return [f"{base}all", f"{base}exp", *(f"{base}s:{state}" for state in STATES), f"{base}ids"]

    def script_keys(self, job_id: str) -> list[str]:
        """KEYS for the write and delete scripts: the record, then its indexes."""
        return [self.record(job_id), *self.indexes(self.tag(job_id))]

    def move_keys(self, group: str) -> list[str]:
        """KEYS for the move script: the group's record, ledger and move number, its indexes."""
        tag = self.tag(group)
        base = self.base(tag)
        return [self.record(group), f"{base}l:{group}", f"{base}n:{group}", *self.indexes(tag)]

    def sweep_keys(self, tag: str, job_ids: Sequence[str]) -> list[str]:
        """KEYS for the sweep script: the tag's indexes, its scratch key, the ids' records."""
        scratch = f"{self.prefix}{tag}x:scratch"
        return [*self.indexes(tag), scratch, *(self.record(job_id) for job_id in job_ids)]

    def listing_keys(self, status: str | None) -> list[str]:
        """Every index to scan when listing ``status`` (None: all statuses)."""
        return [self.index_of(tag, status) for tag in self.all_tags()]

    def name_keys(self, name: str) -> list[str]:
        """Every index of the jobs named ``name`` (one per tag), scored by updated_at."""
        return [self.name_key(tag, name) for tag in self.all_tags()]

    def name_key(self, tag: str, name: str) -> str:
        """The index of the jobs named ``name`` whose keys carry ``tag``."""
        return f"{self.prefix}{tag}x:n:{name}"

    def children_keys(self, parent: str) -> list[str]:
        """Every index of the children of ``parent`` (one per tag: children spread)."""
        return [f"{self.prefix}{tag}x:p:{parent}" for tag in self.all_tags()]

    def ids_keys(self) -> list[str]:
        """Every tag's index of ids, in byte order (for a search by id prefix)."""
        return [f"{self.prefix}{tag}x:ids" for tag in self.all_tags()]

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
# KEYS: the eight index keys of the tag (as KeyLayout.indexes), a scratch key of
# the same tag, then the record key of each id in ARGV[2:].
# ARGV: the most live ids to rebuild from, then the dead ids.
SWEEP_SCRIPT: Final = """
local exp = KEYS[2]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local live = redis.call('ZCOUNT', exp, '(' .. now_ms, '+inf')
if live <= tonumber(ARGV[1]) and live < redis.call('ZCARD', exp) then
  local ids = redis.call('ZRANGEBYSCORE', exp, '(' .. now_ms, '+inf')
  local scratch = KEYS[9]
  for k = 1, 8 do
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
  if redis.call('EXISTS', KEYS[8 + n]) == 0 then
    for k = 1, 8 do redis.call('ZREM', KEYS[k], ARGV[n]) end
    removed = removed + 1
  end
end
return removed
"""


URL_OPTIONS: Final = {"prefix": url.text, "timeout": url.seconds}


def _amount_text(amount: float) -> tuple[str, str]:
    if isinstance(amount, int):
        return str(amount), "i" if len(str(abs(amount))) <= MAX_INT_DIGITS else "f"
    return dumps(amount), "f"


def write_args(layout: KeyLayout, job_id: str, change: Change) -> list[str | int]:
    """ARGV for the write script (see WRITE_SCRIPT).

    Raises:
        ValueError: the change has an unknown guard.
        WriteRefused: an increment is not a number a record can hold.
    """
    guard_holds(None, change.guard)  # an unknown guard raises before any I/O
    updated = parse_iso(change.set.get("updated_at"))
    args: list[str | int] = [
        job_id,
        layout.channel(job_id),
        _milliseconds(change.ttl),
        _milliseconds(change.finished_ttl),
        "" if updated is None else f"{updated:.6f}",
        *(change.origin or ("", 0)),
        change.guard or "",
        change.history_limit,
        layout.base(layout.tag(job_id)),
        "defer" if layout.defers else "chain",
        layout.prefix,
        dumps(utc_now_iso()),
        len(change.set),
        len(change.unset),
        len(change.events),
    ]
    for key, value in change.set.items():
        args += [key, dumps(value)]
    args += change.unset
    for event, at in change.events:
        args += [dumps(event), dumps(at)]
    for key, amount in change.incr.items():
        refuse_unstorable(key, amount)
        text, kind = _amount_text(amount)
        args += [key, text, kind]
    return args


REFUSED: Final = "REFUSED"  # the first word of the write script's refusals


@dataclass(frozen=True)
class Move:
    """A child's move that its group's slot must apply (Redis Cluster, see MOVE_SCRIPT)."""

    group: str
    child: str
    number: str
    status: str
    ratio: str
    at: str
    score: str


def written(reply: Any) -> Written:
    """What the write script's reply ``{applied, created, cancel, queued_at, ...}`` says."""
    applied, created = int(reply[0]), bool(int(reply[1]))
    cancel_text, queued_at = _text(reply[2]), _text(reply[3])
    cancel = loads_record(cancel_text) if cancel_text else None
    return Written(
        applied=bool(applied), created=created, cancel=cancel, queued_at=queued_at or None
    )


def first_move(job_id: str, change: Change, reply: Any) -> Move | None:
    """The group's move a deferred write answered, if any."""
    if len(reply) < 9:
        return None
    group, number, status, ratio, at = (_text(part) for part in reply[4:9])
    updated = parse_iso(loads(at))
    score = "" if updated is None else f"{updated:.6f}"
    return Move(group, job_id, number, status, ratio, at, score)


def next_move(move: Move, reply: Any) -> Move | None:
    """The move of the group's own group the move script answered, if any."""
    if len(reply) < 5:
        return None
    parent, number, status, ratio = (_text(part) for part in reply[1:5])
    return Move(parent, move.group, number, status, ratio, move.at, move.score)


def move_args(layout: KeyLayout, move: Move, change: Change) -> list[str | int]:
    """ARGV for the move script (see MOVE_SCRIPT)."""
    score = move.score or f"{time.time():.6f}"
    return [
        move.child,
        move.number,
        move.status,
        move.ratio,
        move.at,
        _milliseconds(change.ttl),
        _milliseconds(change.finished_ttl),
        change.history_limit,
        score,
        layout.channel(move.group),
        layout.base(layout.tag(move.group)),
        move.group,
    ]


def count_args(cut: float | None) -> list[str | int]:
    """ARGV for the count script."""
    return [COUNT_BATCH, "" if cut is None else repr(cut)]


def counts_of(replies: Sequence[Sequence[Any]]) -> tuple[dict[str, int], int]:
    """The counts per status and the stale count, summed over every tag's reply."""
    counts = dict.fromkeys(STATES, 0)
    stale = 0
    for reply in replies:
        for state, count in zip(STATES, reply, strict=False):
            counts[state] += int(count)
        if len(reply) > len(STATES):
            stale += int(reply[len(STATES)])
    return counts, stale


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def as_text(value: bytes | str) -> str:
    """A reply's bytes as text (a client made with decode_responses=True gives str)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


_text = as_text


def decode_hash(raw: Mapping[Any, Any] | None) -> Record | None:
    """A record from HGETALL's answer (bytes or str), or None for a missing key."""
    if not raw:
        return None
    # One JSON document decodes about three times faster than a loads() per field.
    if _bytes_answer(raw):
        fields = [_key_json(key) + value for key, value in raw.items() if key]
        record: Record = loads((b"{" + b",".join(fields) + b"}").decode("utf-8"))
    else:  # a client made with decode_responses=True
        fields = [f"{_json_string(key)}:{value}" for key, value in raw.items() if key]
        record = loads("{" + ",".join(fields) + "}")
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
    records: list[Record | None] = loads((b"[" + b",".join(objects) + b"]").decode("utf-8"))
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
    pairs: Iterable[tuple[str, Record | None]],
    status: str | None,
    before: float | None,
    name: str | None = None,
    id_prefix: str | None = None,
) -> list[tuple[str, Record]]:
    """Drop ids whose record is gone or no longer matches (indexes lag by design)."""
    kept = []
    for job_id, record in pairs:
        if record is None:
            continue
        if status is not None and record.get("status") != status:
            continue
        if name is not None and record.get("name") != name:
            continue
        if id_prefix is not None and not job_id.startswith(id_prefix):
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
        self,
        layout: KeyLayout,
        status: str | None,
        limit: int,
        before: float | None,
        *,
        name: str | None = None,
        id_prefix: str | None = None,
        by_status: bool = False,
    ) -> None:
        # A search by name reads that name's indexes, or the status's when it has fewer
        # entries (``by_status``); any other search, the status's.
        if name is None or by_status:
            self.keys = layout.listing_keys(status)
        else:
            self.keys = layout.name_keys(name)
        self.status, self.limit, self.before = status, limit, before
        self.name, self.id_prefix = name, id_prefix
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
        listed = keep_listed(pairs, self.status, self.before, self.name, self.id_prefix)
        if len(listed) >= self.limit or self._complete:
            return listed[: self.limit]
        self.size *= 2
        return None


def prefix_range(id_prefix: str) -> tuple[str, bytes]:
    """ZRANGEBYLEX's min and max for the ids starting with ``id_prefix``.

    Redis orders members by their bytes; UTF-8 keeps code point order and
    never holds the byte 0xFF, so every such id sorts below the prefix + 0xFF.
    """
    return f"[{id_prefix}", b"(" + id_prefix.encode("utf-8") + b"\xff"


def newest_first(
    ids: Sequence[str], scores: Sequence[float | None], before: float | None
) -> list[str]:
    """The ids that have a listing score (below ``before``), newest first."""
    rows = [
        (float(score), job_id)
        for job_id, score in zip(ids, scores, strict=True)
        if score is not None and (before is None or float(score) < before)
    ]
    rows.sort(reverse=True)
    return [job_id for _, job_id in rows]
