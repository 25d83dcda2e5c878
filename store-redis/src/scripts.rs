//! The Lua scripts that make each write one atomic server-side step.
//!
//! Every key a script touches is passed in `KEYS` and shares the
//! deployment's hash tag, so the scripts also run on Redis Cluster.

use std::sync::LazyLock;

use redis::Script;

/// `record_heartbeat` for a batch of heartbeats, applied in order.
/// KEYS = due zset, hosts zset, then one host hash per heartbeat.
/// ARGV = eleven values per heartbeat: host, at, at_ms, due_if_up,
/// due_if_up_ms, create ("1"/"0"), has_message, message, has_report,
/// report, and the instant half-way from `at` to `due_if_up`.
/// Returns, per heartbeat, `unknown`, `created`, or the status before it.
///
/// An up host whose stored `due_at` lies between that half-way instant and
/// `due_if_up` keeps it (early by at most half a timeout, never late): a
/// host beating often then costs no index write on most heartbeats.
pub(crate) static HEARTBEATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local due, hosts = KEYS[1], KEYS[2]
local out = {}
for i = 1, #KEYS - 2 do
  local h = KEYS[i + 2]
  local a = (i - 1) * 11
  local host, at, at_ms, dup, dup_ms = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local cur = redis.call('HMGET', h, 'status', 'last_seen', 'outbox', 'version', 'due_at')
  local status = cur[1]
  if not status then
    if ARGV[a + 6] ~= '1' then
      out[i] = 'unknown'
    else
      local f = {'host', host, 'status', 'up', 'last_seen', at, 'watch_from', at,
                 'alarm_count', '0', 'due_at', dup, 'version', '1'}
      if ARGV[a + 7] == '1' then f[#f + 1] = 'message'; f[#f + 1] = ARGV[a + 8] end
      if ARGV[a + 9] == '1' then f[#f + 1] = 'report'; f[#f + 1] = ARGV[a + 10] end
      redis.call('HSET', h, unpack(f))
      redis.call('ZADD', due, dup_ms, host)
      redis.call('ZADD', hosts, 0, host)
      out[i] = 'created'
    end
  else
    local f = {'version', string.format('%d', (tonumber(cur[4]) or 0) + 1)}
    if (not cur[2]) or at > cur[2] then f[#f + 1] = 'last_seen'; f[#f + 1] = at end
    if ARGV[a + 7] == '1' then f[#f + 1] = 'message'; f[#f + 1] = ARGV[a + 8] end
    if ARGV[a + 9] == '1' then f[#f + 1] = 'report'; f[#f + 1] = ARGV[a + 10] end
    local d = cur[5]
    if status == 'up' and not cur[3] then
      if not (d and d > ARGV[a + 11] and d <= dup) then
        f[#f + 1] = 'due_at'; f[#f + 1] = dup
        redis.call('ZADD', due, dup_ms, host)
      end
    elseif status == 'missing' or status == 'alarmed' then
      f[#f + 1] = 'due_at'; f[#f + 1] = at
      redis.call('ZADD', due, at_ms, host)
    end
    redis.call('HSET', h, unpack(f))
    out[i] = status
  end
end
return out
"#,
    )
});

/// `compare_and_swap`: KEYS = host hash, due zset, hosts zset.
/// ARGV = expected version, host, due_ms ("" for none), then the record's
/// field/value pairs. Returns 1 when written, 0 when the version differed.
pub(crate) static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('HGET', KEYS[1], 'version')
if v then
  if v ~= ARGV[1] then return 0 end
elseif ARGV[1] ~= '0' then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
redis.call('ZADD', KEYS[3], 0, ARGV[2])
return 1
"#,
    )
});

/// `remove`: KEYS = host hash, due zset, hosts zset; ARGV = host.
/// Returns 1 if the host existed.
pub(crate) static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
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
