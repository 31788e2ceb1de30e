-- deps_release: dependencies of a waiting job completed (the second step of their end, run by
-- the worker that ended them, or by housekeeping if it died first): all of one call's
-- completed parents of the job at once, one call per job however many of its parents a batch
-- completed. Safe to run twice: a dependency leaves the job's set once, and the job is made
-- ready when the set empties, once.
--
-- KEYS[1]  {ns:q}:waiting    ZSET  jobs waiting for others, by enqueue time
-- KEYS[2]  {ns:q}:wo:<id>    SET   the dependencies of job <id> that have not completed
-- KEYS[3]  {ns:q}:got:<id>   SET   ends that came before the job was stored (deps_add.lua)
-- KEYS[4]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[5]  {ns:q}:sched      ZSET  ids stored as 'scheduled', by run_at
-- KEYS[6]  {ns:q}:wake       LIST  wake-up tokens for idle workers
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  the waiting job's id
-- ARGV[3]  the ids of its dependencies that completed, space-separated
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
local parents = {}
for parent in string.gmatch(ARGV[3], '%S+') do parents[#parents + 1] = parent end
-- In slices: unpack() of more than about 8,000 values overflows Lua's stack.
local function each_slice(command, set_key)
  local n = 0
  for s = 1, #parents, 1000 do
    n = n + redis.call(command, set_key, unpack(parents, s, math.min(s + 999, #parents)))
  end
  return n
end
if not v[1] then
  -- Its enqueue has not stored it yet (deps_link.lua ran, deps_add.lua is to come).
  each_slice('SADD', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 86400)
  return 0
end
if v[1] ~= 'waiting' or each_slice('SREM', KEYS[2]) == 0 then return 0 end
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('ZREM', KEYS[1], id)
local p = string.match(v[2] or '', '^(%-?%d+)|') or '0'
local run_at = v[3] or now
made_ready(key, id, p, run_at, now, KEYS[4], KEYS[5], KEYS[6], ARGV[5], ARGV[6])
return 1
