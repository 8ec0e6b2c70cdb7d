-- move_leader.lua: compare-and-set of a track's leader.
-- Accepted only when the expected generation is current (0: no leader yet), the named result exists
-- on this track with this metric, ran exactly this patch and is not stale, and (unless this is the
-- first leader) the metric
-- beats the current one by more than zero and at least min_delta in the swarm's direction.
-- KEYS[1] leader:t=<track>  KEYS[2] history:t=<track>  KEYS[3] leader:moves  KEYS[4] results:meta
-- KEYS[5] settings  KEYS[6] events  KEYS[7] leader:tracks  KEYS[8] results (msgpack records)
-- ARGV[1] track  ARGV[2] expected generation  ARGV[3] metric  ARGV[4] patch hash  ARGV[5] hypothesis id
-- ('' for none)  ARGV[6] agent id  ARGV[7] result id  ARGV[8] moves maxlen  ARGV[9] events maxlen
-- ARGV[10] pub/sub channel  ARGV[11] default direction  ARGV[12] default min_delta
-- ARGV[13..] supporting result ids (confirmation runs): when given, the metric must be the mean of the
-- named result and these, every one on this track, not stale, and run on exactly this patch.
-- The leader's `runs` field says how many runs its metric is the mean of (1 + the supporting ids).
-- Returns {'ok', <leader field/value list>} or {reason}.
local cur = redis.call('HMGET', KEYS[1], 'generation', 'metric')
local gen = tonumber(cur[1] or '0')
if gen ~= tonumber(ARGV[2]) then return {'stale_generation'} end
local new = tonumber(ARGV[3])
local sum, n = 0, 0
for i = 7, #ARGV do
  if i == 7 or i > 12 then
    local met, why = run_metric(KEYS[4], KEYS[8], ARGV[i], ARGV[1], ARGV[4])
    if not met then return {why} end
    sum, n = sum + met, n + 1
  end
end
if n == 1 then
  if sum ~= new then return {'unknown_result'} end
else
  local mean = sum / n
  if math.abs(mean - new) > 1e-9 * math.max(1, math.abs(mean)) then return {'unknown_result'} end
end
if gen > 0 then
  local direction = redis.call('HGET', KEYS[5], 'direction') or ARGV[11]
  local min_delta = setting_num(KEYS[5], 'min_delta', ARGV[12])
  local old = tonumber(cur[2])
  local gain = old - new
  if direction == 'maximize' then gain = new - old end
  if not (gain > 0 and gain >= min_delta) then return {'not_better'} end
end
local fields = {'track', ARGV[1], 'generation', tostring(gen + 1), 'metric', ARGV[3], 'patch_hash', ARGV[4],
  'hypothesis_id', ARGV[5], 'agent_id', ARGV[6], 'result_id', ARGV[7], 'time_ms', int(now_ms()),
  'runs', int(math.max(1, #ARGV - 11))}
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[7], ARGV[1])
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(fields))
redis.call('PUBLISH', ARGV[10], cmsgpack.pack(fields))
event(KEYS[6], ARGV[9], 'leader', 'leader of ' .. ARGV[1] .. ' -> generation ' .. (gen + 1) .. ' ' .. ARGV[3]
  .. ' by ' .. ARGV[6] .. ' (result ' .. ARGV[7] .. ')', 'track', ARGV[1], 'rid', ARGV[7])
return {'ok', fields}
