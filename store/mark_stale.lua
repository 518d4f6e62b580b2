-- Mark a cached report stale at once (soft invalidation): its entry keeps
-- its bytes, is fresh no longer than until ARGV[1], and lives at most
-- ARGV[4] ms more, as any stale report (its TTL is never raised); readers
-- are told as by a fill, so that in-process caches drop it.
-- KEYS[1]: the report's entry (see entry.go: "dc3 <computed> <fresh> ...")
-- ARGV[1]: the time it is stale from (Unix ms)
-- ARGV[2]: the notification channel
-- ARGV[3]: the notification message (the canonical key)
-- ARGV[4]: how long a stale report is kept (ms)
-- Returns 1 when the entry was fresh and is now stale, 0 when it is absent,
-- already stale, or not an entry.
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
local nl = string.find(v, '\n', 1, true)
if not nl then
  return 0
end
local f = {}
for field in string.gmatch(string.sub(v, 1, nl - 1), '%S+') do
  f[#f + 1] = field
end
local fresh, at = tonumber(f[3]), tonumber(ARGV[1])
if #f ~= 7 or f[1] ~= 'dc3' or not fresh or fresh <= at then
  return 0
end
f[3] = ARGV[1]
local ttl = redis.call('PTTL', KEYS[1])
local keep = tonumber(ARGV[4])
if ttl > 0 and ttl < keep then
  keep = ttl
end
redis.call('SET', KEYS[1], table.concat(f, ' ') .. string.sub(v, nl), 'PX', keep)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
