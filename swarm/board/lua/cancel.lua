-- cancel.lua: cancel an open or claimed hypothesis; a claim's token is revoked (its result goes stale).
-- KEYS[1] hyp:<id>  KEYS[2] leases  KEYS[3] state:open  KEYS[4] state:claimed  KEYS[5] state:cancelled
-- KEYS[6] events  KEYS[7] claimants
-- ARGV[1] id  ARGV[2] events maxlen  ARGV[3] key prefix
-- Returns 'ok', 'missing', or the final state it was already in.
local f = redis.call('HMGET', KEYS[1], 'state', 'queue', 'seq', 'claimed_by')
if not f[1] then return 'missing' end
if f[1] == 'open' then
  redis.call('ZREM', f[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif f[1] == 'claimed' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[1], 'token', 'deadline_ms')
  untrack(ARGV[3], KEYS[7], f[4], ARGV[1])
else
  return f[1]
end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('ZADD', KEYS[5], f[3], ARGV[1])
event(KEYS[6], ARGV[2], 'cancel', 'cancelled ' .. ARGV[1], 'hid', ARGV[1])
return 'ok'
