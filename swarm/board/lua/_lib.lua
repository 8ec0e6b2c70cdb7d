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

-- Expired leases go back to their open queue with attempts+1, or to failed at max_attempts.
-- Keys reached by name (hyp:<id>, the stored queue) are under the same {swarm} hash tag.
local function reap(prefix, leases, st_open, st_claimed, st_failed, events, now, max_attempts, batch, evmax)
  local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, batch)
  for _, hid in ipairs(ids) do
    local hk = prefix .. 'hyp:' .. hid
    redis.call('ZREM', leases, hid)
    local f = redis.call('HMGET', hk, 'state', 'attempts', 'queue', 'score', 'seq', 'claimed_by')
    if f[1] == 'claimed' then
      local attempts = tonumber(f[2] or '0') + 1
      local agent = f[6] or '?'
      redis.call('ZREM', st_claimed, hid)
      redis.call('HDEL', hk, 'claimed_by', 'token', 'deadline_ms')
      if attempts >= max_attempts then
        redis.call('HSET', hk, 'state', 'failed', 'attempts', attempts)
        redis.call('ZADD', st_failed, f[5], hid)
        event(events, evmax, 'requeue', 'lease of ' .. hid .. ' held by ' .. agent .. ' expired (attempt '
          .. attempts .. ' of ' .. max_attempts .. '): failed', 'hid', hid, 'agent', agent, 'to', 'failed')
      else
        redis.call('HSET', hk, 'state', 'open', 'attempts', attempts)
        redis.call('ZADD', f[3], f[4], hid)
        redis.call('ZADD', st_open, f[5], hid)
        event(events, evmax, 'requeue', 'lease of ' .. hid .. ' held by ' .. agent .. ' expired (attempt '
          .. attempts .. ' of ' .. max_attempts .. '): back to open', 'hid', hid, 'agent', agent, 'to', 'open')
      end
    end
  end
  return #ids
end
