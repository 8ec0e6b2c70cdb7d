-- init.lua: create the swarm (settings + pinned arena file map) unless it exists. Blobs are uploaded
-- before this runs (content-addressed, idempotent), so a half-done init never leaves a dangling pin.
-- KEYS[1] settings  KEYS[2] arena:files  KEYS[3] events
-- ARGV[1] events maxlen  ARGV[2] n = number of settings field/value pairs  ARGV[3 .. 2+2n] settings
-- pairs  ARGV[3+2n ..] arena path/sha256 pairs
-- Returns {1, created_ms} when created, {0, existing arena_hash} when the swarm already existed.
local existing = redis.call('HGET', KEYS[1], 'arena_hash')
if existing then return {0, existing} end
local now = int(now_ms())
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'created_ms', now)
for i = 3 + 2 * n, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
event(KEYS[3], ARGV[1], 'init', 'swarm created', 'arena_hash', redis.call('HGET', KEYS[1], 'arena_hash'))
return {1, now}
