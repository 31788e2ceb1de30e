-- beat: record a worker as alive, or forget it when it leaves.
--
-- KEYS[1]  {ns}:workers  HASH  worker id -> JSON of its WorkerInfo
-- KEYS[2]  {ns}:seen     ZSET  worker id by last heartbeat
-- ARGV[1]  worker id
-- ARGV[2]  JSON of the worker ("" = it is leaving)
-- ARGV[3]  now
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  -- ZREM first, a write that cannot grow memory: a full store (noeviction) still takes it.
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
