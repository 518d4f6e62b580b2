-- Renew a lock (extend its TTL) only if the caller still owns it.
-- KEYS[1]: the lock key
-- ARGV[1]: the caller's owner token
-- ARGV[2]: the new TTL in milliseconds
-- Returns 1 when extended, 0 when the lock is held by someone else or gone.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
