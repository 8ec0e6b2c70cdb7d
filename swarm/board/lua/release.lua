-- release.lua: give a claimed hypothesis back to its open queue (attempts unchanged), current token only.
-- KEYS[1] hyp:<id>  KEYS[2] leases  KEYS[3] state:open  KEYS[4] state:claimed  KEYS[5] events
-- KEYS[6] claimants
-- ARGV[1] id  ARGV[2] token  ARGV[3] events maxlen  ARGV[4] key prefix
-- Returns 1 when released, 0 when refused.
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'queue', 'score', 'seq', 'claimed_by')
if f[1] ~= 'claimed' or f[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'open')
redis.call('HDEL', KEYS[1], 'claimed_by', 'token', 'deadline_ms')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', f[3], f[4], ARGV[1])
redis.call('ZADD', KEYS[3], f[5], ARGV[1])
untrack(ARGV[4], KEYS[6], f[6], ARGV[1])
event(KEYS[5], ARGV[3], 'release', f[6] .. ' released ' .. ARGV[1], 'hid', ARGV[1], 'agent', f[6])
return 1
