-- forget: drop workers whose last heartbeat is older than a time.
--
-- KEYS[1]  {ns}:workers  HASH  worker id -> JSON of its WorkerInfo
-- KEYS[2]  {ns}:seen     ZSET  worker id by last heartbeat
-- ARGV[1]  forget workers last seen before this time
--
-- Returns how many were forgotten.
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #gone
