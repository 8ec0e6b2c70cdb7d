-- giveback.lua: a claimed hypothesis its implementer could not turn into code (the LLM unreachable,
-- paused, malformed replies, edits that never apply) goes back to open with the failure recorded.
-- Such a failure counts against the hypothesis only once the proposer that failed has implemented
-- other hypotheses since (the fault is then plausibly the idea's, not the proposer's): `ok_at` is the
-- proposer's count of implementations (proposers:implemented) at the failure; a failure counts when
-- that count has grown. Every giveback re-counts; attempts + counted >= max_attempts ends it failed.
-- Back in its queue it goes behind the others of its priority (a new age), so one hypothesis a
-- proposer keeps failing on does not stay at the head of the queue, failing it again and again.
-- KEYS[1] hyp:<id>  KEYS[2] leases  KEYS[3] state:open  KEYS[4] state:claimed  KEYS[5] state:failed
-- KEYS[6] events  KEYS[7] claimants  KEYS[8] settings  KEYS[9] proposers:implemented  KEYS[10] seq:hyp
-- ARGV[1] id  ARGV[2] token  ARGV[3] proposer  ARGV[4] reason  ARGV[5] events maxlen  ARGV[6] key prefix
-- ARGV[7] default max attempts  ARGV[8] failures kept (the newest)
-- Returns {state, counted} ('open' | 'failed'), or {'refused', 0} when the token is not current.
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'queue', 'score', 'seq', 'claimed_by', 'attempts',
  'failures')
if f[1] ~= 'claimed' or f[2] ~= ARGV[2] then return {'refused', 0} end
local failures = {}
if f[8] then failures = cjson.decode(f[8]) end
local ok_at = tonumber(redis.call('HGET', KEYS[9], ARGV[3]) or '0')
table.insert(failures, {proposer = ARGV[3], reason = ARGV[4], agent = f[6] or '', ms = now_ms(),
  ok_at = ok_at, counted = false})
while #failures > tonumber(ARGV[8]) do table.remove(failures, 1) end
local counted = 0
for _, r in ipairs(failures) do
  if not r.reopened then
    r.counted = tonumber(redis.call('HGET', KEYS[9], r.proposer) or '0') > r.ok_at
    if r.counted then counted = counted + 1 end
  end
end
local max_attempts = setting_num(KEYS[8], 'max_attempts', ARGV[7])
local attempts = tonumber(f[7] or '0')
redis.call('HSET', KEYS[1], 'failures', cjson.encode(failures))
redis.call('HDEL', KEYS[1], 'claimed_by', 'token', 'deadline_ms')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
untrack(ARGV[6], KEYS[7], f[6], ARGV[1])
local to = 'open'
if attempts + counted >= max_attempts then
  to = 'failed'
  redis.call('HSET', KEYS[1], 'state', 'failed')
  redis.call('ZADD', KEYS[5], f[5], ARGV[1])
else
  local score = tonumber(f[4])
  score = score - (score % 1000000000000) + redis.call('INCR', KEYS[10])
  redis.call('HSET', KEYS[1], 'state', 'open', 'score', int(score))
  redis.call('ZADD', f[3], int(score), ARGV[1])
  redis.call('ZADD', KEYS[3], f[5], ARGV[1])
end
event(KEYS[6], ARGV[5], 'giveback', ARGV[3] .. ' could not implement ' .. ARGV[1] .. ': ' .. ARGV[4] ..
  ' (' .. counted .. ' such failure(s) counted, ' .. attempts .. ' lost run(s), of ' .. max_attempts .. '): ' .. to,
  'hid', ARGV[1], 'agent', f[6] or '', 'proposer', ARGV[3], 'to', to)
return {to, counted}
