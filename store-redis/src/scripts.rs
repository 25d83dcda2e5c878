//! The Lua scripts that make each write one atomic server-side step.
//!
//! Every key a script touches is passed in `KEYS` and shares the
//! deployment's hash tag, so the scripts also run on Redis Cluster.

use std::sync::LazyLock;

use redis::Script;

/// `record_heartbeat` for a batch of heartbeats, applied in order.
///
/// KEYS = due zset, hosts zset, up hash, then one host hash per heartbeat.
/// ARGV\[1] = where the host id starts in a host key (the length of
/// `{prefix}:h:` plus one), ARGV\[2] = the group member sets' prefix
/// (`{prefix}:gm:`); then per heartbeat: `at`, `due_if_up`, the
/// instant half-way from `at` to `due_if_up`, a flags string (create,
/// has message, has report, has group as `0`/`1`, then `at` and
/// `due_if_up` in milliseconds, the nanoseconds of `at` past its
/// millisecond and the interval the heartbeat sent in milliseconds, empty
/// for none: `10101767225600000,1767225610000,123456,60000`), and the
/// message, report and group when the flags say they are there. Returns
/// one character per heartbeat: `n` unknown, `c` created, or the first
/// letter of the status before it (`u`, `m`, `a`, `p`).
///
/// The fast path: an up host with nothing owed has an entry in the up hash
/// (see [`UP_ENTRY`] and the codec's `up_entry`: `due_at`, `last_seen`,
/// `version`, `last_seen` in milliseconds and the nanoseconds past them,
/// and the interval). A
/// heartbeat without message or report whose host has an entry with
/// `due_at` in core's [`LazyWindow`](iamalive_core::LazyWindow), from the
/// half-way instant to `due_if_up`, both included (early by at most half a
/// timeout, never late), and whose group, if it names one, is the stored
/// one (one `HGET`, no write), only rewrites that entry: one `HMGET` for
/// the whole batch before, one `HSET` after, no call per host. Any other
/// heartbeat takes the slow path: it folds the entry (authoritative for
/// `version`, `last_seen` and the interval) into the host's hash, applies
/// the contract there (re-arming `due_at` and the index when needed, never
/// for a host with a stored `policy` or `flapping`, whose `due_at` the
/// monitor arms: see core's heartbeat rule), and keeps the entry exactly
/// while the host stays up with nothing owed.
///
/// The host's interval (core's `learn_interval`, `Interval::on_heartbeat`)
/// is learned inside the same script call on both paths: the fast path
/// keeps it in the entry (no call on the host's hash, the gap taken from
/// the two instants in whole milliseconds and nanoseconds, integer
/// arithmetic), the slow path in the hash's `interval`, `gap` and
/// `prev_gap` fields (milliseconds) as well. An entry written before it
/// carried the interval takes the slow path once.
pub(crate) static HEARTBEATS: LazyLock<Script> = LazyLock::new(|| Script::new(HEARTBEATS_LUA));

/// The fixed-width head of an up-hash entry: `due_at` ends at byte 30,
/// `last_seen` at byte 60; the comma-separated numbers follow.
pub(crate) const UP_ENTRY: (usize, usize) = (30, 60);

const HEARTBEATS_LUA: &str = r#"
local due, hosts, up = KEYS[1], KEYS[2], KEYS[3]
local n = #KEYS - 3
local from = tonumber(ARGV[1])
local gm = ARGV[2]
local sub, match, byte, fmt = string.sub, string.match, string.byte, string.format
-- An entry's numbers after its two instants: version, last_seen's
-- milliseconds and the nanoseconds past them (six digits), interval,
-- gap, prev_gap.
local TAIL = '^(%d+),(%-?%d+),(%d%d%d%d%d%d),(%d+),(%d+),(%d+)$'
local names = {}
for i = 1, n do names[i] = sub(KEYS[i + 3], from) end
local got = redis.call('HMGET', up, unpack(names))
local cur, dirty, dl, nd = {}, {}, {}, 0
for i = 1, n do
  local h = names[i]
  if cur[h] == nil then cur[h] = got[i] end
end
-- An up entry (see the codec's up_entry); false when it cannot be one.
-- All but the instants are decimal strings (or numbers below 1e13).
local function entry(d, ls, v, lm, lsub, s1, s2, s3)
  if d and #d == 30 and #ls == 30 and lm then
    return d .. ls .. v .. ',' .. lm .. ',' .. lsub .. ',' .. s1 .. ',' .. s2 .. ',' .. s3
  end
  return false
end
-- The gap from ls to at (at >= ls) in whole milliseconds, floored, at
-- least 1 when positive, as a string: the instants' milliseconds and the
-- six-digit nanoseconds past them as the entry and the flags carry them
-- (equal width: compared as strings).
local function gap_of(at, am, asub, ls, lm, lsub)
  local g = tonumber(am) - tonumber(lm)
  if asub < lsub then g = g - 1 end
  if at > ls and g < 1 then g = 1 end
  return fmt('%d', g)
end
-- A fixed-width instant as whole milliseconds and the nanoseconds past
-- them (the slow path's fallback when no entry carries them).
local function ms_of(s)
  if not s then return nil end
  local y, mo, d, h, mi, se, ns = match(s,
    '^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d%d%d%d%d%d%d)Z$')
  if not y then return nil end
  y, mo, d, ns = tonumber(y), tonumber(mo), tonumber(d), tonumber(ns)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  local secs = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60 + tonumber(se)
  return fmt('%d', secs * 1000 + math.floor(ns / 1000000)), fmt('%06d', ns % 1000000)
end
-- core's Interval::on_heartbeat, on decimal strings: the sent interval
-- (iv, '' for none) wins and the gaps stay; without one the gap since
-- the last beat is learned while up and not out of order, the old gap
-- becoming prev_gap. Returns the new interval, gap, prev_gap.
local function learn(iv, gap, prev, up_, at, am, asub, ls, lm, lsub)
  if iv ~= '' then return iv, gap, prev end
  if up_ and ls and lm and at >= ls then
    return '0', gap_of(at, am, asub, ls, lm, lsub), gap
  end
  return '0', gap, prev
end
local out = {}
local j = 3
for i = 1, n do
  local h = names[i]
  local at, dup, half, fl = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  j = j + 4
  local m, r = byte(fl, 2) == 49, byte(fl, 3) == 49
  local g = byte(fl, 4) == 49
  local msg, rep, grp
  if m then msg = ARGV[j]; j = j + 1 end
  if r then rep = ARGV[j]; j = j + 1 end
  if g then grp = ARGV[j]; j = j + 1 end
  local at_ms, dup_ms, asub, iv = match(fl, '^....([^,]*),([^,]*),([^,]*),(.*)$')
  local e = cur[h]
  local fast = false
  if e and g and redis.call('HGET', KEYS[i + 3], 'group') == grp then
    -- Idempotent (and not replicated when it changes nothing): indexes a
    -- host whose group was stored before the member sets existed.
    redis.call('SADD', gm .. grp, h)
    g = false
  end
  if e and not m and not r and not g and #at == 30 then
    local d = sub(e, 1, 30)
    if d >= half and d <= dup then
      local vs, lm, lsub, s1, s2, s3 = match(e, TAIL, 61)
      if vs and #vs <= 13 then
        local ls = sub(e, 31, 60)
        s1, s2, s3 = learn(iv, s2, s3, true, at, at_ms, asub, ls, lm, lsub)
        if at > ls then ls, lm, lsub = at, at_ms, asub end
        cur[h] = entry(d, ls, tonumber(vs) + 1, lm, lsub, s1, s2, s3)
        fast = true
      end
    end
  end
  if fast then
    out[i] = 'u'
  else
    local key = KEYS[i + 3]
    local cur_ = redis.call('HMGET', key, 'status', 'last_seen', 'outbox', 'version', 'due_at',
      'policy', 'flapping', 'group', 'interval', 'gap', 'prev_gap')
    local status = cur_[1]
    local ent = false
    if not status then
      if byte(fl, 1) ~= 49 then
        out[i] = 'n'
      else
        local f = {'host', h, 'status', 'up', 'last_seen', at, 'watch_from', at,
                   'alarm_count', '0', 'due_at', dup, 'version', '1'}
        if m then f[#f + 1] = 'message'; f[#f + 1] = msg end
        if r then f[#f + 1] = 'report'; f[#f + 1] = rep end
        if g then f[#f + 1] = 'group'; f[#f + 1] = grp end
        if iv ~= '' then f[#f + 1] = 'interval'; f[#f + 1] = iv end
        redis.call('HSET', key, unpack(f))
        if g then redis.call('SADD', gm .. grp, h) end
        redis.call('ZADD', due, dup_ms, h)
        redis.call('ZADD', hosts, 0, h)
        ent = entry(dup, at, '1', at_ms, asub, iv ~= '' and iv or '0', '0', '0')
        out[i] = 'c'
      end
    else
      local ls, ver = cur_[2], cur_[4]
      local s1, s2, s3 = cur_[9] or '0', cur_[10] or '0', cur_[11] or '0'
      local lm, lsub
      if e then
        ls = sub(e, 31, 60)
        local v, a, b, x, y, z = match(e, TAIL, 61)
        if v then
          ver, lm, lsub, s1, s2, s3 = v, a, b, x, y, z
        else
          ver = match(e, '^%d+', 61)
        end
      end
      local up_ = status == 'up'
      if up_ and iv == '' and ls and at >= ls and not lm then lm, lsub = ms_of(ls) end
      s1, s2, s3 = learn(iv, s2, s3, up_, at, at_ms, asub, ls, lm, lsub)
      if (not ls) or at > ls then ls, lm, lsub = at, at_ms, asub end
      local v = fmt('%d', (tonumber(ver) or 0) + 1)
      local f = {'version', v, 'last_seen', ls}
      local gone, vals = {}, {s1, s2, s3}
      for k, name in ipairs({'interval', 'gap', 'prev_gap'}) do
        local x = vals[k]
        if x ~= '0' then
          f[#f + 1] = name; f[#f + 1] = x
        elseif cur_[8 + k] then
          gone[#gone + 1] = name
        end
      end
      if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
      if m then f[#f + 1] = 'message'; f[#f + 1] = msg end
      if r then f[#f + 1] = 'report'; f[#f + 1] = rep end
      if g then
        f[#f + 1] = 'group'; f[#f + 1] = grp
        if cur_[8] and cur_[8] ~= grp then redis.call('SREM', gm .. cur_[8], h) end
        redis.call('SADD', gm .. grp, h)
      end
      local d = cur_[5]
      if status == 'up' and not cur_[3] then
        if not cur_[6] and not cur_[7] and not (d and d >= half and d <= dup) then
          d = dup
          f[#f + 1] = 'due_at'; f[#f + 1] = dup
          redis.call('ZADD', due, dup_ms, h)
        end
        if not lm then lm, lsub = ms_of(ls) end
        ent = entry(d, ls, v, lm, lsub, s1, s2, s3)
      elseif status == 'missing' or status == 'alarmed' then
        f[#f + 1] = 'due_at'; f[#f + 1] = at
        redis.call('ZADD', due, at_ms, h)
      end
      redis.call('HSET', key, unpack(f))
      out[i] = sub(status, 1, 1)
    end
    if ent or e then cur[h] = ent end
  end
  if cur[h] ~= got[i] and not dirty[h] then
    dirty[h] = true; nd = nd + 1; dl[nd] = h
  end
end
if nd > 0 then
  local set, del = {}, {}
  for x = 1, nd do
    local h = dl[x]
    local v = cur[h]
    if v then set[#set + 1] = h; set[#set + 1] = v else del[#del + 1] = h end
  end
  if #set > 0 then redis.call('HSET', up, unpack(set)) end
  if #del > 0 then redis.call('HDEL', up, unpack(del)) end
end
return table.concat(out)
"#;

/// `compare_and_swap`: KEYS = host hash, due zset, hosts zset, up hash.
/// ARGV = expected version, host, due_ms ("" for none), the host's up-hash
/// entry ("" when it must have none: not up, a notice owed, or no
/// `due_at`), the record's group ("" for none), the group member sets'
/// prefix, then the record's field/value pairs. A host whose group
/// changes moves between the member sets. The stored version is
/// the entry's while there is one, else the hash's. Returns 1 when
/// written, 0 when the version differed.
pub(crate) static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local e = redis.call('HGET', KEYS[4], ARGV[2])
local v
if e then
  v = string.match(e, '^%d+', 61)
else
  v = redis.call('HGET', KEYS[1], 'version')
end
if v then
  if v ~= ARGV[1] then return 0 end
elseif ARGV[1] ~= '0' then
  return 0
end
local old = redis.call('HGET', KEYS[1], 'group')
local new = ARGV[5]
if new == '' then new = false end
if old ~= new then
  if old then redis.call('SREM', ARGV[6] .. old, ARGV[2]) end
  if new then redis.call('SADD', ARGV[6] .. new, ARGV[2]) end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
redis.call('ZADD', KEYS[3], 0, ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
elseif e then
  redis.call('HDEL', KEYS[4], ARGV[2])
end
return 1
"#,
    )
});

/// `remove`: KEYS = host hash, due zset, hosts zset, up hash; ARGV = host,
/// the group member sets' prefix. Returns 1 if the host existed.
pub(crate) static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local old = redis.call('HGET', KEYS[1], 'group')
if old then redis.call('SREM', ARGV[2] .. old, ARGV[1]) end
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return n
"#,
    )
});

/// The monitors' mark: KEYS = mark hash; ARGV = expected version ("0" when
/// absent), next version, then field/value pairs. Returns 1 when written.
pub(crate) static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('HGET', KEYS[1], 'version') or '0'
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[2], unpack(ARGV, 3))
return 1
"#,
    )
});

/// The records of some hosts, read in one step (on Redis Cluster, where a
/// `MULTI` transaction is not redirected when its slot moves): KEYS = up
/// hash, then one host hash per host; ARGV = the host ids. Returns the
/// hosts' up entries (as `HMGET` would; one `HGET` each, so any number of
/// hosts fits), then one `HGETALL` reply per host,
/// as the transaction does on one server. Writes nothing.
pub(crate) static RECORDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ups = {}
for i = 1, #ARGV do
  ups[i] = redis.call('HGET', KEYS[1], ARGV[i])
end
local out = {ups}
for i = 2, #KEYS do
  out[i] = redis.call('HGETALL', KEYS[i])
end
return out
"#,
    )
});
