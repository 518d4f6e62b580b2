-- Take a slot of a bounded set of holders, each of which frees its slot when
-- it ends or when its lifetime runs out, should it never end: a customer's
-- BI calls in flight (its share, share.go), a customer's outstanding fills
-- (admission.go). Or only look whether one is free.
-- KEYS[1]: the holders: a sorted set scored by each one's expiry (Unix ms)
-- ARGV[1]: the holder (a call's token, a report's canonical key); "" to look
--          without taking
-- ARGV[2]: how many holders may be in the set at once
-- ARGV[3]: a holder's lifetime in milliseconds
-- Returns 1 when a slot was free or ARGV[1] holds one already (and now holds
-- it for a new lifetime), 0 when the set is full.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = ARGV[1] ~= '' and redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
