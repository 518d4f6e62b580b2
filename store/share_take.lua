-- Take a slot of a customer's fleet-wide share of BI calls in flight, or only
-- look whether one is free.
-- KEYS[1]: the customer's calls in flight: a sorted set of holder tokens,
--          each scored by its expiry (Unix ms), so a dead holder's slot frees
--          itself
-- ARGV[1]: the holder's token; "" to look without taking
-- ARGV[2]: the share: how many calls may be in flight at once
-- ARGV[3]: the slot's lifetime in milliseconds
-- Returns 1 when a slot was free (and is now taken, given a token), 0 when the
-- share is in use.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
