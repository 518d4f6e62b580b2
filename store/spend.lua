-- Count one BI call of a customer against its daily budget, unless the budget
-- is used up.
-- KEYS[1]: the day's usage: a hash of counts (usage.go, usageField)
-- ARGV[1]: the customer's calls field
-- ARGV[2]: the daily budget; 0 for none
-- ARGV[3]: how long the day's usage is kept, in seconds
-- ARGV[4]: the customer's field of refusals for its budget
-- ARGV[5]: the customer's calls field of the named report; "" for the
--          default report (its calls are the customer's others)
-- Returns 1 when the call is counted, 0 when the budget is used up (the
-- refusal is counted instead).
local calls = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local budget = tonumber(ARGV[2])
local ok = 1
if budget > 0 and calls >= budget then
  redis.call('HINCRBY', KEYS[1], ARGV[4], 1)
  ok = 0
else
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  if ARGV[5] ~= '' then
    redis.call('HINCRBY', KEYS[1], ARGV[5], 1)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return ok
