-- set_brief.lua: replace the brief and bump its version (unchanged text keeps the version).
-- KEYS[1] brief  KEYS[2] events
-- ARGV[1] text  ARGV[2] events maxlen
-- Returns the version now current.
local cur = redis.call('HMGET', KEYS[1], 'version', 'text')
if cur[2] == ARGV[1] then return tonumber(cur[1]) end
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'text', ARGV[1])
event(KEYS[2], ARGV[2], 'brief', 'brief set to version ' .. v .. ' (' .. string.len(ARGV[1]) .. ' bytes)')
return v
