-- publish.lua: store a result once (by its publisher-chosen id) and flag it stale when its token is
-- not the hypothesis' current lease (reaped, released, cancelled, reclaimed or past its deadline).
-- In the same step it adds the result to the summaries observers read instead of every result
-- (`results:tally`, `results:minutes`; their layout in swarm/board/keys.py).
-- KEYS[1] results  KEYS[2] results:meta  KEYS[3] results:stream  KEYS[4] hyp:<id> (settings when none)
-- KEYS[5] events  KEYS[6] results:tally  KEYS[7] results:minutes
-- ARGV[1] result id  ARGV[2] msgpack result  ARGV[3] track  ARGV[4] metric ('' for none)
-- ARGV[5] token ('' for none)  ARGV[6] '1' when the result names a hypothesis  ARGV[7] events maxlen
-- ARGV[8] event text  ARGV[9] proposer ('' for none)  ARGV[10] kind  ARGV[11] status
-- ARGV[12] LLM input tokens  ARGV[13] LLM output tokens  ARGV[14] LLM cost (USD)
-- ARGV[15] LLM latency (s)  ARGV[16] minutes a per-minute count is kept
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
local sid = redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'track', ARGV[3])
-- The summaries. `n` counts every result they cover: a reader trusts them only while it equals
-- HLEN results (a board written before they existed has fewer).
local tally, p = KEYS[6], ARGV[9]
redis.call('HINCRBY', tally, 'n', 1)
redis.call('HINCRBY', tally, 'o|' .. ARGV[10] .. '|' .. ARGV[11] .. '|' .. ARGV[3] .. '|' .. p, 1)
if ARGV[12] ~= '0' then redis.call('HINCRBY', tally, 's|in|' .. p, ARGV[12]) end
if ARGV[13] ~= '0' then redis.call('HINCRBY', tally, 's|out|' .. p, ARGV[13]) end
if tonumber(ARGV[14]) ~= 0 then redis.call('HINCRBYFLOAT', tally, 's|cost|' .. p, ARGV[14]) end
if ARGV[12] ~= '0' or ARGV[13] ~= '0' or tonumber(ARGV[15]) ~= 0 then
  redis.call('HINCRBY', tally, 's|llm_n|' .. p, 1)
  redis.call('HINCRBYFLOAT', tally, 's|llm_s|' .. p, ARGV[15])
end
-- Per minute of the stream id (the time readers count by) and track; the first result of a minute
-- drops the minutes older than the kept span, so the hash stays ~span x tracks fields.
local minute = math.floor(tonumber(string.match(sid, '^(%d+)')) / 60000)
if redis.call('HINCRBY', KEYS[7], int(minute) .. '|' .. ARGV[3], 1) == 1 then
  local oldest = minute - tonumber(ARGV[16])
  for _, field in ipairs(redis.call('HKEYS', KEYS[7])) do
    if tonumber(string.match(field, '^(%d+)|')) < oldest then redis.call('HDEL', KEYS[7], field) end
  end
end
local text = ARGV[8]
if stale == '1' then text = text .. ' (stale token: cannot move a leader)' end
event(KEYS[5], ARGV[7], 'result', text, 'rid', ARGV[1], 'stale', stale)
return {1, stale, int(now)}
