-- heartbeat.lua: record an agent's state and push its expiry, both on the server clock.
-- KEYS[1] agents:status  KEYS[2] agents:expiry
-- ARGV[1] agent id  ARGV[2] state  ARGV[3] current hypothesis ('' for none)  ARGV[4] ttl ms
-- Returns the expiry (ms).
local now = now_ms()
local expires = int(now + tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({state = ARGV[2], current = ARGV[3], last_ms = now}))
redis.call('ZADD', KEYS[2], expires, ARGV[1])
return expires
