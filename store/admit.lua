-- Admit a reader's fill of a report unless its customer has too many fills
-- outstanding (queued or running).
-- KEYS[1]: the customer's outstanding fills: canonical keys, each scored by
--          the time (Unix ms) it stops counting should its task never end
-- ARGV[1]: the report's canonical key
-- ARGV[2]: how many fills may be outstanding at once
-- ARGV[3]: how long an admitted fill counts at most, in milliseconds
-- Returns 1 when admitted (a report already outstanding always is), 0 when
-- refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
