-- renew.lua: extend a lease, only for the current token and only before its deadline has passed
-- (an expired lease is lost even if nobody has reaped it yet).
-- KEYS[1] hyp:<id>  KEYS[2] leases  KEYS[3] settings
-- ARGV[1] id  ARGV[2] token  ARGV[3] lease ms (0: the swarm's lease_s)  ARGV[4] default lease ms
-- Returns the new deadline (ms) or 0 when refused.
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'deadline_ms')
if f[1] ~= 'claimed' or f[2] ~= ARGV[2] then return 0 end
local now = now_ms()
if tonumber(f[3]) < now then return 0 end
local lease_ms = tonumber(ARGV[3])
if lease_ms <= 0 then lease_ms = setting_num(KEYS[3], 'lease_s', tonumber(ARGV[4]) / 1000) * 1000 end
local deadline = int(now + lease_ms)
redis.call('HSET', KEYS[1], 'deadline_ms', deadline)
redis.call('ZADD', KEYS[2], deadline, ARGV[1])
return deadline
