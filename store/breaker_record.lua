-- Record a BI call's outcome in the fleet-wide breaker, and open or close it.
-- KEYS[1]: open (see breaker_allow.lua)
-- KEYS[2]: tripped
-- KEYS[3]: probe
-- KEYS[4]: failures: recent failures as "customer|nonce", scored by time (ms)
-- KEYS[5]: answered: when a call was last answered (ms), kept for the window
-- ARGV[1]: 1 if the platform failed (timeout, 5xx, no connection), 0 if it
--          answered
-- ARGV[2]: the call's customer
-- ARGV[3]: a nonce, so that every failure counts
-- ARGV[4]: how many failures open the breaker...
-- ARGV[5]: ...from at least this many customers...
-- ARGV[6]: ...within this window (ms), with no call answered in between
-- ARGV[7]: the cool-down (ms)
-- ARGV[8]: for a failure that came after the call had run past the back
--          end's usual latency (slow), when the call began (ms), else 0: a
--          slow failure counts only if no call was answered since it began
--          (the platform answers others: the query is slow, not the platform
--          down)
-- Returns 1 when this outcome opened the breaker, -1 when it closed it, 0
-- when it changed nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == '0' then
  redis.call('SET', KEYS[5], now, 'PX', ARGV[6])
  local tripped = redis.call('DEL', KEYS[2])
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
  if tripped == 1 then
    return -1
  end
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  -- Tripped: a failed probe, or a call out since before the cool-down ended,
  -- opens it again; a failure while it is open changes nothing.
  if redis.call('PTTL', KEYS[1]) > 0 then
    return 0
  end
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[7])
  redis.call('DEL', KEYS[3])
  return 1
end
local began = tonumber(ARGV[8])
if began > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') >= began then
  return 0
end
redis.call('ZADD', KEYS[4], now, ARGV[2] .. '|' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[4], ARGV[6])
local recent = redis.call('ZRANGE', KEYS[4], 0, -1)
if #recent < tonumber(ARGV[4]) then
  return 0
end
local seen, customers = {}, 0
for _, m in ipairs(recent) do
  local c = string.match(m, '^(.*)|')
  if not seen[c] then
    seen[c] = true
    customers = customers + 1
  end
end
if customers < tonumber(ARGV[5]) then
  return 0
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[7])
redis.call('SET', KEYS[2], '1', 'EX', 86400)
redis.call('DEL', KEYS[4])
return 1
