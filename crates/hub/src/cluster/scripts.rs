//! The Lua scripts that change a room's log. Each runs atomically in Redis,
//! so offsets are given without gaps whatever the number of nodes, and a
//! broadcast leaves in offset order (PUBLISH inside the append).
//!
//! Keys of a room: `{prefix}log:{room}:m` (hash: `e` epoch, `o` last offset,
//! `b` data bytes held) and `{prefix}log:{room}:s` (stream); the set
//! `{prefix}rooms` lists rooms with a log.

use std::sync::LazyLock;

use redis::Script;

/// Creates the log if missing. KEYS: meta, rooms. ARGV: new epoch, room.
/// Returns `{epoch, offset}`.
pub(crate) static OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0, 'b', 0)
  redis.call('SADD', KEYS[2], ARGV[2])
end
return {e, redis.call('HGET', KEYS[1], 'o')}
",
    )
});

/// Appends, trims and broadcasts. KEYS: meta, stream, rooms. ARGV: new
/// epoch, room, at (ms), event, has-from (`1`/`0`), from, data, max entries,
/// max bytes, oldest `at` kept (ms), channel, broadcast body. Returns
/// `{epoch, offset}`.
pub(crate) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0, 'b', 0)
  redis.call('SADD', KEYS[3], ARGV[2])
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local b = redis.call('HINCRBY', KEYS[1], 'b', string.len(ARGV[7]))
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[2], o .. '-1', 't', ARGV[3], 'e', ARGV[4], 'd', ARGV[7], 'f', ARGV[6])
else
  redis.call('XADD', KEYS[2], o .. '-1', 't', ARGV[3], 'e', ARGV[4], 'd', ARGV[7])
end
local max_entries = tonumber(ARGV[8])
local max_bytes = tonumber(ARGV[9])
local oldest = tonumber(ARGV[10])
local n = redis.call('XLEN', KEYS[2])
while n > 1 do
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  local t, size = 0, 0
  local f = first[2]
  for i = 1, #f, 2 do
    if f[i] == 't' then t = tonumber(f[i + 1]) elseif f[i] == 'd' then size = string.len(f[i + 1]) end
  end
  if n > max_entries or b > max_bytes or t < oldest then
    redis.call('XDEL', KEYS[2], first[1])
    b = redis.call('HINCRBY', KEYS[1], 'b', -size)
    n = n - 1
  else
    break
  end
end
redis.call('PUBLISH', ARGV[11], o .. ' ' .. e .. ' ' .. ARGV[12])
return {e, o}
",
    )
});

/// Removes a log nothing was appended to. KEYS: meta, stream, rooms. ARGV:
/// room.
pub(crate) static DISCARD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'o') == '0' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[1])
end
return 0
",
    )
});
