-- _lib.lua: helpers prepended to every board script by swarm/board/lua/__init__.py (not a script itself).
-- Numbers go back to Redis through int() because Lua's default number->string conversion keeps
-- only 14 significant digits (it would round millisecond times and claim scores).

local function int(x)
  return string.format('%d', x)
end

-- Milliseconds from the server clock: agents' clocks never decide a lease.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A number from the settings hash, or the caller's default when the swarm was never initialised.
local function setting_num(settings_key, field, default)
  local v = redis.call('HGET', settings_key, field)
  if v then return tonumber(v) end
  return tonumber(default)
end

local function event(events_key, maxlen, kind, text, ...)
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'kind', kind, 'text', text, ...)
end

-- The metric of published result `rid` if it is on `track`, not stale, has a metric and ran exactly
-- `patch` (its results:meta entry "stale|...|metric|track" and its msgpack record's patch_hash); else nil
-- and the refusal, 'unknown_result' or 'stale_result'. The runs behind a leader: move_leader, refresh_leader.
local function run_metric(meta_key, results_key, rid, track, patch)
  local m = redis.call('HGET', meta_key, rid)
  if not m then return nil, 'unknown_result' end
  local st, _, met, tr = string.match(m, '^(%d)|(%d+)|([^|]*)|(.*)$')
  if st == '1' then return nil, 'stale_result' end
  if tr ~= track or met == '' then return nil, 'unknown_result' end
  local rec = cmsgpack.unpack(redis.call('HGET', results_key, rid))
  if rec['patch_hash'] ~= patch then return nil, 'unknown_result' end
  return tonumber(met), nil
end

-- A claim is held two ways: its lease (a member of `leases` scored by its deadline) and its agent's
-- life (a member of the set `claims:<agent>`; an agent holding any claim is a member of `claimants`,
-- scored by its heartbeat expiry). Either running out hands the claim back: `reap_leases` takes the
-- leases past their deadline, `reap_dead` the claims of agents whose heartbeat expired. Both read
-- only what is due (a range of a sorted set), never every lease or every agent.
-- `ks`, built by each calling script from its KEYS: leases, open, claimed, failed, claimants, events.
-- Keys reached by name (hyp:<id>, claims:<agent>, the stored queue) are under the same {swarm} hash tag.

-- `agent` no longer holds `hid`: out of its claims set, and out of claimants once it holds none.
local function untrack(prefix, claimants, agent, hid)
  if not agent then return end
  local ck = prefix .. 'claims:' .. agent
  redis.call('SREM', ck, hid)
  if redis.call('EXISTS', ck) == 0 then redis.call('ZREM', claimants, agent) end
end

-- Hand back a claim whose holder is gone: open with attempts+1, or failed at max_attempts. Its token
-- is revoked, so a late result of the lost claim is stored stale. `cause`: lease | heartbeat | left.
-- With `agent`, only a claim that agent holds. Returns 1 when it requeued, 0 when not claimed (by it).
local function requeue(prefix, ks, hid, agent, cause, max_attempts, evmax)
  local hk = prefix .. 'hyp:' .. hid
  local f = redis.call('HMGET', hk, 'state', 'attempts', 'queue', 'score', 'seq', 'claimed_by')
  if f[1] ~= 'claimed' or (agent and f[6] ~= agent) then return 0 end
  local holder = f[6] or '?'
  local attempts = tonumber(f[2] or '0') + 1
  redis.call('ZREM', ks.leases, hid)
  redis.call('ZREM', ks.claimed, hid)
  redis.call('HDEL', hk, 'claimed_by', 'token', 'deadline_ms')
  untrack(prefix, ks.claimants, f[6], hid)
  local to = 'open'
  if attempts >= max_attempts then
    to = 'failed'
    redis.call('HSET', hk, 'state', 'failed', 'attempts', attempts)
    redis.call('ZADD', ks.failed, f[5], hid)
  else
    redis.call('HSET', hk, 'state', 'open', 'attempts', attempts)
    redis.call('ZADD', f[3], f[4], hid)
    redis.call('ZADD', ks.open, f[5], hid)
  end
  local why
  if cause == 'lease' then
    why = 'lease of ' .. hid .. ' held by ' .. holder .. ' expired'
  elseif cause == 'heartbeat' then
    why = holder .. "'s heartbeat expired: its claim of " .. hid .. ' is taken back'
  else
    why = holder .. ' left holding ' .. hid
  end
  local dest = 'back to open'
  if to == 'failed' then dest = 'failed' end
  event(ks.events, evmax, 'requeue', why .. ' (attempt ' .. attempts .. ' of ' .. max_attempts .. '): ' .. dest,
    'hid', hid, 'agent', holder, 'to', to, 'cause', cause)
  return 1
end

-- Leases past their deadline (at most `batch`). Returns how many entries it took.
local function reap_leases(prefix, ks, now, max_attempts, batch, evmax)
  local ids = redis.call('ZRANGEBYSCORE', ks.leases, '-inf', now, 'LIMIT', 0, batch)
  for _, hid in ipairs(ids) do
    redis.call('ZREM', ks.leases, hid)  -- also a leftover entry of a hypothesis no longer claimed
    requeue(prefix, ks, hid, nil, 'lease', max_attempts, evmax)
  end
  return #ids
end

-- Claims of agents whose heartbeat expiry has passed (at most `batch` claims). An agent that beats
-- again before this runs keeps its claims (heartbeat.lua moves its score). Returns how many it took.
-- Not within one heartbeat TTL of the server's start: while Redis was down no agent could beat, so
-- after a restart (the AOF brings the claimants back with their old scores) every agent gets one TTL
-- to beat again before it counts as dead; its lease still applies meanwhile. (A swarm without the
-- setting, created before it existed, has no such grace.)
local function reap_dead(prefix, ks, now, max_attempts, batch, evmax)
  local agents = redis.call('ZRANGEBYSCORE', ks.claimants, '-inf', now, 'LIMIT', 0, batch)
  if #agents == 0 then return 0 end
  local uptime_s = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
  if uptime_s < setting_num(ks.settings, 'heartbeat_ttl_s', 0) then return 0 end
  local n = 0
  for _, agent in ipairs(agents) do
    local ck = prefix .. 'claims:' .. agent
    local ids = redis.call('SPOP', ck, batch - n)
    for _, hid in ipairs(ids) do
      requeue(prefix, ks, hid, agent, 'heartbeat', max_attempts, evmax)
    end
    n = n + #ids
    if redis.call('EXISTS', ck) == 0 then redis.call('ZREM', ks.claimants, agent) end
    if n >= batch then break end
  end
  return n
end
