-- extend: the heartbeat's lease extension for every job of one queue a worker holds.
--
-- KEYS[1]  {ns:q}:held:<worker>  SET   ids this worker holds
-- KEYS[2]  {ns:q}:leases         ZSET  worker id by the earliest lease of the jobs it holds
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  worker id
-- ARGV[3]  new lease expiry (now + lease)
--
-- Returns how many leases were extended. Ids the worker no longer holds (recovered or
-- deleted meanwhile) are dropped from its set instead. Every job held now has the same
-- lease, so it is also the worker's earliest; a worker holding nothing leaves the index.
local prefix, worker, lease_until = ARGV[1], ARGV[2], ARGV[3]
-- A write that cannot grow memory first: at maxmemory (noeviction) Redis refuses only a
-- script whose first write may, so a full store's leases are still extended.
redis.call('ZREM', KEYS[2], worker)
local extended = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = prefix .. 'j:' .. id
  local v = redis.call('HMGET', key, 's', 'lb')
  if v[1] == 'active' and v[2] == worker then
    redis.call('HSET', key, 'lu', lease_until)
    extended = extended + 1
  else
    redis.call('SREM', KEYS[1], id)
  end
end
if extended > 0 then
  redis.call('ZADD', KEYS[2], lease_until, worker)
end
return extended
