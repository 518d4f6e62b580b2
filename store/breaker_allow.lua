-- May a BI call go out? Asks the fleet-wide breaker.
-- KEYS[1]: open: exists while the breaker is open; its TTL is the cool-down left
-- KEYS[2]: tripped: exists from the breaker's opening until a call succeeds
-- KEYS[3]: probe: exists while the one call allowed after a cool-down is out
-- ARGV[1]: the probe's lifetime in milliseconds (longer than a call)
-- Returns {1, 0}: closed, call; {2, 0}: the cool-down is over, call as the
-- probe; {0, ms}: do not call, ask again in ms.
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  return {0, left}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {1, 0}
end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then
  return {2, 0}
end
return {0, 1000}
