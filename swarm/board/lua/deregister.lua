-- deregister.lua: take an agent out of the registry and hand back every claim it still holds (a
-- release that never reached the board, a claim whose reply was lost): open with attempts+1, failed at
-- max_attempts, each with an event, as an expired lease would be. A clean stop releases first, so
-- this usually finds none. Its track's agents:live:t=<track> (the track read from its registry entry)
-- forgets it too.
-- KEYS[1] agents  KEYS[2] agents:status  KEYS[3] agents:expiry  KEYS[4] claimants  KEYS[5] claims:<agent>
-- KEYS[6] leases  KEYS[7] state:open  KEYS[8] state:claimed  KEYS[9] state:failed  KEYS[10] events
-- KEYS[11] settings  KEYS[12] agents:health
-- ARGV[1] key prefix  ARGV[2] agent id  ARGV[3] default max attempts  ARGV[4] events maxlen
-- Returns how many claims it handed back.
local ks = {leases = KEYS[6], open = KEYS[7], claimed = KEYS[8], failed = KEYS[9], events = KEYS[10],
  claimants = KEYS[4]}
local max_attempts = setting_num(KEYS[11], 'max_attempts', ARGV[3])
local n = 0
for _, hid in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  n = n + requeue(ARGV[1], ks, hid, ARGV[2], 'left', max_attempts, ARGV[4])
end
redis.call('DEL', KEYS[5])
redis.call('ZREM', KEYS[4], ARGV[2])
local info = redis.call('HGET', KEYS[1], ARGV[2])
if info then
  local track = cmsgpack.unpack(info).track
  if type(track) == 'string' then redis.call('ZREM', ARGV[1] .. 'agents:live:t=' .. track, ARGV[2]) end
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[12], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
event(KEYS[10], ARGV[4], 'leave', ARGV[2] .. ' left', 'agent', ARGV[2])
return n
