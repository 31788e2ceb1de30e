-- deps_release: one dependency of a waiting job completed (the second step of that
-- dependency's end, run by the worker that ended it, or by housekeeping if it died first).
-- Safe to run twice: the dependency leaves the job's set once, and the job is made ready
-- when the set empties, once.
--
-- KEYS[1]  {ns:q}:waiting    ZSET  jobs waiting for others, by enqueue time
-- KEYS[2]  {ns:q}:wo:<id>    SET   the dependencies of job <id> that have not completed
-- KEYS[3]  {ns:q}:got:<id>   SET   ends that came before the job was stored (deps_add.lua)
-- KEYS[4]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[5]  {ns:q}:sched      ZSET  ids stored as 'scheduled', by run_at
-- KEYS[6]  {ns:q}:wake       LIST  wake-up tokens for idle workers
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  the waiting job's id
-- ARGV[3]  the id of its dependency that completed
-- ARGV[4]  now
-- ARGV[5]  for a job of a limit's bucket: its queue's prefix "{ns:q}:" ("" otherwise)
-- ARGV[6]  the bucket's queue name: made ready, the bucket joins its queue's buckets and
--          ready set (as enqueue.lua does for a bucket), and its queue's wake list is pushed
--
-- Returns 1 when the job became ready (pending or scheduled), else 0.
local prefix, id, now = ARGV[1], ARGV[2], ARGV[4]
local key = prefix .. 'j:' .. id
--#include deps_ready
local v = redis.call('HMGET', key, 's', 'm', 'ra')
if not v[1] then
  -- Its enqueue has not stored it yet (deps_link.lua ran, deps_add.lua is to come).
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], 86400)
  return 0
end
if v[1] ~= 'waiting' or redis.call('SREM', KEYS[2], ARGV[3]) == 0 then return 0 end
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('ZREM', KEYS[1], id)
local p = string.match(v[2] or '', '^(%-?%d+)|') or '0'
local run_at = v[3] or now
made_ready(key, id, p, run_at, now, KEYS[4], KEYS[5], KEYS[6], ARGV[5], ARGV[6])
return 1
