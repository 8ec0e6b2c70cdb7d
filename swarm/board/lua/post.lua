-- post.lua: store a new hypothesis and queue it, unless its id (derived from its identity) exists.
-- KEYS[1] hyp:<id>  KEYS[2] its open queue  KEYS[3] state:open  KEYS[4] seq:hyp  KEYS[5] events
-- ARGV[1] id  ARGV[2] msgpack data  ARGV[3] priority  ARGV[4] event text  ARGV[5] events maxlen
-- ARGV[6] (optional) an agent that should leave it to others (a candidate's author, for confirmations)
-- ARGV[7] (optional) the urgent priority: a hypothesis of at least it is announced on ARGV[8] (a pub/sub
--         channel) with its track ARGV[9], so an agent whose exploration has just started can run it now
-- Returns 1 when created, 0 when the id existed (a duplicate).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[4])
-- Lowest score is claimed first: higher priority, then older (seq). priority in [-1000, 1000].
local score = (1000 - tonumber(ARGV[3])) * 1000000000000 + seq
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'state', 'open', 'attempts', 0, 'created_ms', int(now_ms()),
  'seq', seq, 'score', int(score), 'queue', KEYS[2])
if ARGV[6] and ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'avoid', ARGV[6]) end
redis.call('ZADD', KEYS[2], int(score), ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
event(KEYS[5], ARGV[5], 'post', ARGV[4], 'hid', ARGV[1])
if ARGV[7] and tonumber(ARGV[3]) >= tonumber(ARGV[7]) then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return 1
