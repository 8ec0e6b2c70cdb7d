-- heartbeat.lua: record an agent's state and push its expiry, both on the server clock; an agent that
-- holds claims moves its score in claimants with it, so they stay its own while it beats. A registered
-- agent's score in its track's agents:live:t=<track> moves too (the track read from its registry entry).
-- KEYS[1] agents:status  KEYS[2] agents:expiry  KEYS[3] claimants  KEYS[4] claims:<agent>  KEYS[5] settings
-- KEYS[6] agents
-- ARGV[1] agent id  ARGV[2] state  ARGV[3] current hypothesis ('' for none)
-- ARGV[4] ttl ms (0: the swarm's heartbeat_ttl_s)  ARGV[5] default ttl ms (a swarm without the setting)
-- ARGV[6] key prefix
-- Returns the expiry (ms).
local now = now_ms()
local ttl_ms = tonumber(ARGV[4])
if ttl_ms <= 0 then ttl_ms = setting_num(KEYS[5], 'heartbeat_ttl_s', tonumber(ARGV[5]) / 1000) * 1000 end
local expires = int(now + ttl_ms)
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({state = ARGV[2], current = ARGV[3], last_ms = now}))
redis.call('ZADD', KEYS[2], expires, ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('ZADD', KEYS[3], expires, ARGV[1]) end
local info = redis.call('HGET', KEYS[6], ARGV[1])
if info then
  local track = cmsgpack.unpack(info).track
  if type(track) == 'string' then redis.call('ZADD', ARGV[6] .. 'agents:live:t=' .. track, expires, ARGV[1]) end
end
return expires
