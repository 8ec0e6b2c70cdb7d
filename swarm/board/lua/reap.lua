-- reap.lua: requeue (or fail) hypotheses whose lease deadline has passed; claim.lua does this too.
-- KEYS[1] leases  KEYS[2] state:open  KEYS[3] state:claimed  KEYS[4] state:failed  KEYS[5] events
-- KEYS[6] settings
-- ARGV[1] key prefix  ARGV[2] default max attempts  ARGV[3] batch  ARGV[4] events maxlen
-- Returns the number of expired leases handled (at most the batch; call again while it is full).
local max_attempts = setting_num(KEYS[6], 'max_attempts', ARGV[2])
return reap(ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], now_ms(), max_attempts, ARGV[3], ARGV[4])
