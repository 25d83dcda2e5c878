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
/// `due_if_up` in milliseconds and the interval the heartbeat sent in
/// milliseconds, empty for none: `10101767225600000,1767225610000,60000`), and
/// the message, report and group when the flags say they are there. Returns one character per
/// heartbeat: `n` unknown, `c` created, or the first letter of the status
/// before it (`u`, `m`, `a`, `p`).
///
/// The fast path: an up host with nothing owed has an entry in the up hash
/// (`due_at`, `last_seen`, `version`, fixed width, see [`UP_ENTRY`]). A
/// heartbeat without message or report whose host has an entry with
/// `due_at` in core's [`LazyWindow`](iamalive_core::LazyWindow), from the
/// half-way instant to `due_if_up`, both included (early by at most half a
/// timeout, never late), and whose group, if it names one, is the stored
/// one (one `HGET`, no write), only rewrites that entry: one `HMGET` for
/// the whole batch before, one `HSET` after, no call per host. Any other
/// heartbeat takes the slow path: it folds the entry (authoritative for
/// `version` and `last_seen`) into the host's hash, applies the contract
/// there (re-arming `due_at` and the index when needed, never for a host
/// with a stored `policy` or `flapping`, whose `due_at` the monitor arms: see core's
/// heartbeat rule), and keeps the entry exactly while the host stays up
/// with nothing owed.
///
/// The host's interval (core's `learn_interval`) is kept in its hash's
/// `interval`, `gap` and `prev_gap` fields (milliseconds), on both paths,
/// inside the same script call: one `HMGET` per heartbeat, and a write
/// only when they change (a sent interval that is the stored one writes
/// nothing; a host that sends none shifts the gap since its last beat).
pub(crate) static HEARTBEATS: LazyLock<Script> = LazyLock::new(|| Script::new(HEARTBEATS_LUA));

/// The fixed-width layout of an up-hash entry: `due_at` (30 bytes),
/// `last_seen` (30 bytes), then `version` in decimal.
pub(crate) const UP_ENTRY: (usize, usize) = (30, 60);

const HEARTBEATS_LUA: &str = r#"
local due, hosts, up = KEYS[1], KEYS[2], KEYS[3]
local n = #KEYS - 3
local from = tonumber(ARGV[1])
local gm = ARGV[2]
local names = {}
for i = 1, n do names[i] = string.sub(KEYS[i + 3], from) end
local got = redis.call('HMGET', up, unpack(names))
local cur, dirty, dl, nd = {}, {}, {}, 0
for i = 1, n do
  local h = names[i]
  if cur[h] == nil then cur[h] = got[i] end
end
local function entry(d, ls, v)
  if d and #d == 30 and #ls == 30 then return d .. ls .. v end
  return false
end
local function secs(s)
  local y, mo, d, h, mi, se, ns = string.match(s,
    '^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d%d%d%d%d%d%d)Z$')
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  return ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60 + tonumber(se), tonumber(ns)
end
local function beat(key, iv, at, ls, up)
  local c = redis.call('HMGET', key, 'interval', 'gap')
  if iv ~= '' then
    if c[1] ~= iv then redis.call('HSET', key, 'interval', iv) end
    return
  end
  if c[1] then redis.call('HDEL', key, 'interval') end
  if not (up and ls and at >= ls) then return end
  local sa, na = secs(at)
  local sl, nl = secs(ls)
  if not (sa and sl) then return end
  local gns = (sa - sl) * 1000000000 + (na - nl)
  local g = math.floor(gns / 1000000)
  if gns > 0 and g < 1 then g = 1 end
  redis.call('HSET', key, 'gap', string.format('%d', g), 'prev_gap', c[2] or '0')
end
local out = {}
local j = 3
for i = 1, n do
  local h = names[i]
  local at, dup, half, fl = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  j = j + 4
  local m, r = string.byte(fl, 2) == 49, string.byte(fl, 3) == 49
  local g = string.byte(fl, 4) == 49
  local msg, rep, grp
  if m then msg = ARGV[j]; j = j + 1 end
  if r then rep = ARGV[j]; j = j + 1 end
  if g then grp = ARGV[j]; j = j + 1 end
  local at_ms, dup_ms, iv = string.match(fl, '^....([^,]*),([^,]*),(.*)$')
  local e = cur[h]
  local fast = false
  if e and g and redis.call('HGET', KEYS[i + 3], 'group') == grp then
    -- Idempotent (and not replicated when it changes nothing): indexes a
    -- host whose group was stored before the member sets existed.
    redis.call('SADD', gm .. grp, h)
    g = false
  end
  if e and not m and not r and not g and #at == 30 then
    local d = string.sub(e, 1, 30)
    if d >= half and d <= dup then
      local v = tonumber(string.sub(e, 61))
      if v and v < 1e14 then
        local ls = string.sub(e, 31, 60)
        beat(KEYS[i + 3], iv, at, ls, true)
        if at > ls then ls = at end
        cur[h] = d .. ls .. (v + 1)
        fast = true
      end
    end
  end
  if fast then
    out[i] = 'u'
  else
    local key = KEYS[i + 3]
    local cur_ = redis.call('HMGET', key, 'status', 'last_seen', 'outbox', 'version', 'due_at', 'policy', 'flapping', 'group')
    local status = cur_[1]
    local ent = false
    if not status then
      if string.byte(fl, 1) ~= 49 then
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
        ent = entry(dup, at, '1')
        out[i] = 'c'
      end
    else
      local ls, ver = cur_[2], cur_[4]
      if e then ls = string.sub(e, 31, 60); ver = string.sub(e, 61) end
      beat(key, iv, at, ls, status == 'up')
      if (not ls) or at > ls then ls = at end
      local v = string.format('%d', (tonumber(ver) or 0) + 1)
      local f = {'version', v, 'last_seen', ls}
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
        ent = entry(d, ls, v)
      elseif status == 'missing' or status == 'alarmed' then
        f[#f + 1] = 'due_at'; f[#f + 1] = at
        redis.call('ZADD', due, at_ms, h)
      end
      redis.call('HSET', key, unpack(f))
      out[i] = string.sub(status, 1, 1)
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
  v = string.sub(e, 61)
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
