-- reopen.lua: a human re-opens a failed, done or cancelled hypothesis: back to its open queue with
-- attempts 0; its earlier implementation failures stay listed, marked `reopened`, and no longer count.
-- KEYS[1] hyp:<id>  KEYS[2] state:open  KEYS[3] state:failed  KEYS[4] state:done  KEYS[5] state:cancelled
-- KEYS[6] events
-- ARGV[1] id  ARGV[2] events maxlen
-- Returns the state it was in ('missing' when there is no such hypothesis); it reopened it only when
-- that state is failed, done or cancelled.
local f = redis.call('HMGET', KEYS[1], 'state', 'queue', 'score', 'seq', 'failures')
if not f[1] then return 'missing' end
if f[1] ~= 'failed' and f[1] ~= 'done' and f[1] ~= 'cancelled' then return f[1] end
if f[5] then
  local failures = cjson.decode(f[5])
  for _, r in ipairs(failures) do r.reopened = true; r.counted = false end
  redis.call('HSET', KEYS[1], 'failures', cjson.encode(failures))
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'open', 'attempts', 0)
redis.call('HDEL', KEYS[1], 'token')
redis.call('ZADD', f[2], f[3], ARGV[1])
redis.call('ZADD', KEYS[2], f[4], ARGV[1])
event(KEYS[6], ARGV[2], 'reopen', 'reopened ' .. ARGV[1] .. ' (was ' .. f[1] .. ')', 'hid', ARGV[1])
return f[1]
