-- due: how many jobs a fetch of one queue would give now, up to a limit (reads only). On
-- Cluster a worker of many queues asks every queue at once, then claims only from those
-- that have some: two round-trips, whatever the number of queues.
--
-- KEYS[1]  {ns:q}:prios          ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:paused         STRING present while the queue is paused
-- KEYS[3]  {ns:q}:claim:<worker> LIST  token of the worker's last claim, then its ids
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  now
-- ARGV[3]  limit
-- ARGV[4]  the token of the fetch asking
--
-- A claim of this very token (the fetch is being sent again after a lost reply) counts as
-- its jobs, so the retry asks for them again and gets them back instead of orphaning them.
if redis.call('LINDEX', KEYS[3], 0) == ARGV[4] then
  return redis.call('LLEN', KEYS[3]) - 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local limit, found = tonumber(ARGV[3]), 0
for _, p in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  if found >= limit then break end
  found = found + redis.call('ZCOUNT', ARGV[1] .. 'w:' .. p, '-inf', ARGV[2])
end
return math.min(found, limit)
