-- reap.lua: hand back the claims whose holder is gone: leases past their deadline and the claims of
-- agents whose heartbeat expired (open with attempts+1, failed at max_attempts); claim.lua does this too.
-- KEYS[1] leases  KEYS[2] state:open  KEYS[3] state:claimed  KEYS[4] state:failed  KEYS[5] events
-- KEYS[6] settings  KEYS[7] claimants
-- ARGV[1] key prefix  ARGV[2] default max attempts  ARGV[3] batch  ARGV[4] events maxlen
-- Returns the number of entries handled, at most the batch for each kind: call again while it is
-- the batch or more.
local ks = {leases = KEYS[1], open = KEYS[2], claimed = KEYS[3], failed = KEYS[4], events = KEYS[5],
  claimants = KEYS[7], settings = KEYS[6]}
local max_attempts = setting_num(KEYS[6], 'max_attempts', ARGV[2])
local now = now_ms()
local batch = tonumber(ARGV[3])
return reap_leases(ARGV[1], ks, now, max_attempts, batch, ARGV[4])
  + reap_dead(ARGV[1], ks, now, max_attempts, batch, ARGV[4])
