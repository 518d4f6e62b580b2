-- Release a lock only if the caller still owns it (compare and delete).
-- KEYS[1]: the lock key
-- ARGV[1]: the caller's owner token
-- Returns 1 when released, 0 when the lock is held by someone else or gone.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
