-- Fenced write: store a value only while the caller still owns the report's
-- lock, and in the same step tell waiting readers.
-- KEYS[1]: the lock key
-- KEYS[2]: the key to write (the report, or the failure marker)
-- KEYS[3]: optional, a key to delete in the same step (the failure marker when
--          a report is written)
-- ARGV[1]: the caller's owner token
-- ARGV[2]: the value
-- ARGV[3]: its TTL in milliseconds
-- ARGV[4]: the notification channel
-- ARGV[5]: the notification message (the canonical key)
-- Returns 1 when written and announced, 0 when the caller does not own the lock.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if KEYS[3] then
  redis.call('DEL', KEYS[3])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
