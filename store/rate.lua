-- Take a slot of the fleet's BI call rate, or say how long to wait for one.
-- KEYS[1]: the calls of the last window: nonces scored by time (Unix ms)
-- KEYS[2]: the readers' calls of the last window (same form)
-- KEYS[3]: exists while a warming call waits
-- KEYS[4]: exists while the fleet is paused after a 429 (its TTL)
-- ARGV[1]: a nonce for this call
-- ARGV[2]: the rate: most calls within...
-- ARGV[3]: ...any window of this many milliseconds (a second and some slack)
-- ARGV[4]: the burst: most calls within...
-- ARGV[5]: ...any window of this many milliseconds
-- ARGV[6]: "warming" for a warming call, else a reader's
-- ARGV[7]: most readers' calls within the rate's window while a warming
--          call waits
-- Returns 0 when the call may go (it is counted), else how many
-- milliseconds to wait before asking again.
local pause = redis.call('PTTL', KEYS[4])
if pause > 0 then
  return pause
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local warming = ARGV[6] == 'warming'
if warming then
  redis.call('SET', KEYS[3], '1', 'PX', window)
end

-- room returns 0 if fewer than limit calls of key fall within the last
-- span ms, else how long until the oldest of them that must leave does.
local function room(key, span, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local since = '(' .. (now - span)
  local n = redis.call('ZCOUNT', key, since, '+inf')
  if n < limit then
    return 0
  end
  local oldest = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', n - limit, 1)
  return tonumber(oldest[2]) + span - now
end

local wait = math.max(room(KEYS[1], window, tonumber(ARGV[2])), room(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[4])))
if not warming and redis.call('EXISTS', KEYS[3]) == 1 then
  wait = math.max(wait, room(KEYS[2], window, tonumber(ARGV[7])))
end
if wait > 0 then
  return wait
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
if not warming then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], window)
end
return 0
