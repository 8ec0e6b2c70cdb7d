-- complete.lua: finish a claim as done or failed, only with the current token before the deadline.
-- The token stays on the hypothesis so a result published after completing is not flagged stale.
-- KEYS[1] hyp:<id>  KEYS[2] leases  KEYS[3] state:claimed  KEYS[4] state:<done|failed>  KEYS[5] events
-- KEYS[6] claimants
-- ARGV[1] id  ARGV[2] token  ARGV[3] done|failed  ARGV[4] events maxlen  ARGV[5] key prefix
-- Returns 1 when completed, 0 when refused.
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'deadline_ms', 'seq', 'claimed_by')
if f[1] ~= 'claimed' or f[2] ~= ARGV[2] then return 0 end
if tonumber(f[3]) < now_ms() then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3])
redis.call('HDEL', KEYS[1], 'deadline_ms')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], f[4], ARGV[1])
untrack(ARGV[5], KEYS[6], f[5], ARGV[1])
event(KEYS[5], ARGV[4], ARGV[3], f[5] .. ' finished ' .. ARGV[1] .. ': ' .. ARGV[3], 'hid', ARGV[1], 'agent', f[5])
return 1
