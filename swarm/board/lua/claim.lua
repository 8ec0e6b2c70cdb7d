-- claim.lua: reap expired leases and the claims of dead agents, then lease the best open hypothesis
-- among the agent's queues.
-- KEYS[1] leases  KEYS[2] state:open  KEYS[3] state:claimed  KEYS[4] state:failed  KEYS[5] seq:token
-- KEYS[6] events  KEYS[7] settings  KEYS[8] claimants  KEYS[9] agents:expiry  KEYS[10] claims:<agent>
-- KEYS[11..] candidate open queues (2 or 4)
-- ARGV[1] key prefix  ARGV[2] agent id  ARGV[3] lease ms (0: the swarm's lease_s)
-- ARGV[4] default lease ms  ARGV[5] default max attempts  ARGV[6] reap batch  ARGV[7] events maxlen
-- ARGV[8] '1': skip hypotheses posted for another agent to run (`avoid` = this agent: its own candidate's
-- confirmations), looking at most ARGV[9] deep into each queue; the caller sends '1' only while another
-- live agent of its track exists, so a lone agent still confirms its own candidates
-- ARGV[10] '' or a queue score: lease only a hypothesis scored below it (of at least a priority)
-- ARGV[11] '' or a queue score: lease only a hypothesis scored at or above it (below a priority); the
-- queues are read from that score on, so what is skipped costs nothing
-- Returns {reaped} when nothing is eligible, else {reaped, id, token, deadline_ms, data, attempts,
-- created_ms, failures (JSON or "")}: only what the caller cannot know (state is claimed, claimed_by is ARGV[2]).
-- The claim joins the agent's claims set; the agent joins claimants scored by its heartbeat expiry
-- (an agent that never heartbeat is not there: only its lease can expire its claims).
-- Each redis.call costs ~1 us of server time plus its reply, so this reads with as few calls as it can.
local now = now_ms()
local cfg = redis.call('HMGET', KEYS[7], 'max_attempts', 'lease_s')
local ks = {leases = KEYS[1], open = KEYS[2], claimed = KEYS[3], failed = KEYS[4], events = KEYS[6],
  claimants = KEYS[8], settings = KEYS[7]}
local max_attempts = tonumber(cfg[1] or ARGV[5])
local reaped = reap_leases(ARGV[1], ks, now, max_attempts, tonumber(ARGV[6]), ARGV[7])
  + reap_dead(ARGV[1], ks, now, max_attempts, tonumber(ARGV[6]), ARGV[7])
local best_q, best_id, best_score = nil, nil, nil
local avoid = ARGV[8] == '1'
local from = ARGV[11] ~= '' and ARGV[11] or nil
for i = 11, #KEYS do
  local top
  if avoid then
    local ids
    if from then
      ids = redis.call('ZRANGEBYSCORE', KEYS[i], from, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[9]))
    else
      ids = redis.call('ZRANGE', KEYS[i], 0, tonumber(ARGV[9]) - 1, 'WITHSCORES')
    end
    top = {}
    for j = 1, #ids, 2 do
      if redis.call('HGET', ARGV[1] .. 'hyp:' .. ids[j], 'avoid') ~= ARGV[2] then
        top = {ids[j], ids[j + 1]}
        break
      end
    end
  elseif from then
    top = redis.call('ZRANGEBYSCORE', KEYS[i], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  else
    top = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  end
  if top[1] then
    local s = tonumber(top[2])
    if best_score == nil or s < best_score then best_q, best_id, best_score = KEYS[i], top[1], s end
  end
end
if not best_id or (ARGV[10] ~= '' and best_score >= tonumber(ARGV[10])) then return {reaped} end
local lease_ms = tonumber(ARGV[3])
if lease_ms <= 0 then
  if cfg[2] then lease_ms = tonumber(cfg[2]) * 1000 else lease_ms = tonumber(ARGV[4]) end
end
local token = redis.call('INCR', KEYS[5])
local deadline = int(now + lease_ms)
local hk = ARGV[1] .. 'hyp:' .. best_id
local f = redis.call('HMGET', hk, 'seq', 'data', 'attempts', 'created_ms', 'failures')
redis.call('ZREM', best_q, best_id)
redis.call('HSET', hk, 'state', 'claimed', 'claimed_by', ARGV[2], 'token', token, 'deadline_ms', deadline)
redis.call('ZADD', KEYS[1], deadline, best_id)
redis.call('ZREM', KEYS[2], best_id)
redis.call('ZADD', KEYS[3], f[1], best_id)
redis.call('SADD', KEYS[10], best_id)
local expires = redis.call('ZSCORE', KEYS[9], ARGV[2])
if expires then redis.call('ZADD', KEYS[8], expires, ARGV[2]) end
event(KEYS[6], ARGV[7], 'claim', ARGV[2] .. ' claimed ' .. best_id, 'hid', best_id, 'agent', ARGV[2])
return {reaped, best_id, token, deadline, f[2], f[3] or '0', f[4] or '0', f[5] or ''}
