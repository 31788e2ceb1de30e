-- deps_cancel: a dependency of a waiting job ended dead or cancelled (or was deleted): the
-- job ends cancelled with the note naming it, and if jobs wait for this one, it joins the
-- queue's to-do set so that they follow (a step per level: bounded work per call). Safe to
-- run twice.
--
-- KEYS[1]  {ns:q}:waiting    ZSET  jobs waiting for others, by enqueue time
-- KEYS[2]  {ns:q}:cancelled  ZSET  cancelled job ids by finished_at
-- KEYS[3]  {ns:q}:wo:<id>    SET   the dependencies of job <id> that have not completed
-- KEYS[4]  {ns:q}:got:<id>   SET   ends that came before the job was stored (deps_add.lua)
-- KEYS[5]  {ns:q}:waited     SET   jobs someone waits for (watch.lua)
-- KEYS[6]  {ns:q}:parents    SET   jobs of the queue some job waits for
-- KEYS[7]  {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told, by when
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  the waiting job's id
-- ARGV[3]  the note: "dependency <id> ended <state>"
-- ARGV[4]  now
--
-- Returns 2 when the job was cancelled and has dependents of its own (now in KEYS[7]),
-- 1 when it was cancelled, else 0.
local prefix, id, now = ARGV[1], ARGV[2], ARGV[4]
local key = prefix .. 'j:' .. id
local state = redis.call('HGET', key, 's')
if not state then
  redis.call('SADD', KEYS[4], '!' .. ARGV[3])
  redis.call('EXPIRE', KEYS[4], 86400)
  return 0
end
if state ~= 'waiting' then return 0 end
--#include batch_moved
batch_moved(id, 'waiting', 'cancelled')  -- a job of a batch counts as cancelled there
redis.call('HSET', key, 's', 'cancelled', 'e', ARGV[3], 'fa', now)
redis.call('ZREM', KEYS[1], id)
redis.call('ZADD', KEYS[2], now, id)
redis.call('DEL', KEYS[3])
if redis.call('SREM', KEYS[5], id) == 1 then
  local token = prefix .. 'ended:' .. id
  redis.call('LPUSH', token, '1')
  redis.call('EXPIRE', token, 300)
end
if redis.call('SREM', KEYS[6], id) == 1 then
  redis.call('ZADD', KEYS[7], now, id)
  return 2
end
return 1
