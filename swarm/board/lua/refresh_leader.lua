-- refresh_leader.lua: more runs of the current leader's own code make its metric the mean of them all.
-- A promoted leader's metric is the mean of the runs that got it promoted, and those were selected
-- for looking good (the winner's curse); runs of its code with new seeds, made after it was chosen,
-- pull that mean toward its true value. Accepted only when the generation is current, the first
-- named result is the leader's own, every named result is on this track, not stale and ran exactly
-- the leader's patch, the metric is their mean, and they are more runs than the leader's metric holds
-- now (an agent that saw fewer of them never undoes a fuller refresh). Not a move: the generation,
-- the history and the moves stream are unchanged and nothing is PUBLISHed (nobody rebases).
-- KEYS[1] leader:t=<track>  KEYS[2] results:meta  KEYS[3] results (msgpack records)  KEYS[4] events
-- ARGV[1] track  ARGV[2] generation  ARGV[3] metric  ARGV[4] events maxlen
-- ARGV[5..] result ids: the leader's own result, then the other runs of its code.
-- Returns {'ok', <leader field/value list>} or {reason}.
local cur = redis.call('HMGET', KEYS[1], 'generation', 'result_id', 'patch_hash', 'runs')
if not cur[1] or tonumber(cur[1]) ~= tonumber(ARGV[2]) then return {'stale_generation'} end
if cur[2] ~= ARGV[5] then return {'unknown_result'} end
local n = #ARGV - 4
if n <= tonumber(cur[4] or '1') then return {'not_more'} end
local seen, sum = {}, 0
for i = 5, #ARGV do
  if seen[ARGV[i]] then return {'unknown_result'} end
  seen[ARGV[i]] = true
  local met, why = run_metric(KEYS[2], KEYS[3], ARGV[i], ARGV[1], cur[3])
  if not met then return {why} end
  sum = sum + met
end
local mean = sum / n
local new = tonumber(ARGV[3])
if math.abs(mean - new) > 1e-9 * math.max(1, math.abs(mean)) then return {'unknown_result'} end
redis.call('HSET', KEYS[1], 'metric', ARGV[3], 'runs', int(n))
event(KEYS[4], ARGV[4], 'refresh', 'leader of ' .. ARGV[1] .. ' generation ' .. ARGV[2] .. ' re-measured: '
  .. ARGV[3] .. ', the mean of ' .. n .. ' runs', 'track', ARGV[1], 'rid', ARGV[5])
local fields = redis.call('HGETALL', KEYS[1])
return {'ok', fields}
