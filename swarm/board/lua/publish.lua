-- publish.lua: store a result once (by its publisher-chosen id) and flag it stale when its token is
-- not the hypothesis' current lease (reaped, released, cancelled, reclaimed or past its deadline).
-- KEYS[1] results  KEYS[2] results:meta  KEYS[3] results:stream  KEYS[4] hyp:<id> (settings when none)
-- KEYS[5] events
-- ARGV[1] result id  ARGV[2] msgpack result  ARGV[3] track  ARGV[4] metric ('' for none)
-- ARGV[5] token ('' for none)  ARGV[6] '1' when the result names a hypothesis  ARGV[7] events maxlen
-- ARGV[8] event text
-- Returns {stored 0|1, stale '0'|'1', published_ms}.
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  local stale, ms = string.match(old, '^(%d)|(%d+)|')
  return {0, stale, ms}
end
local now = now_ms()
local stale = '0'
if ARGV[6] == '1' then
  local f = redis.call('HMGET', KEYS[4], 'state', 'token', 'deadline_ms')
  if not f[1] or f[2] ~= ARGV[5] then
    stale = '1'
  elseif f[1] == 'claimed' and tonumber(f[3]) < now then
    stale = '1'
  elseif f[1] ~= 'claimed' and f[1] ~= 'done' and f[1] ~= 'failed' then
    stale = '1'
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], stale .. '|' .. int(now) .. '|' .. ARGV[4] .. '|' .. ARGV[3])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'track', ARGV[3])
local text = ARGV[8]
if stale == '1' then text = text .. ' (stale token: cannot move a leader)' end
event(KEYS[5], ARGV[7], 'result', text, 'rid', ARGV[1], 'stale', stale)
return {1, stale, int(now)}
