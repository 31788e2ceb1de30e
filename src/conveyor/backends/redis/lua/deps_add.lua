-- deps_add: store a job that waits for others (the second step of its enqueue, after
-- deps_link.lua recorded it with each dependency that had not ended).
--
-- KEYS[1]  {ns:q}:waiting    ZSET  jobs waiting for others, by enqueue time
-- KEYS[2]  {ns:q}:cancelled  ZSET  cancelled job ids by finished_at
-- KEYS[3]  {ns:q}:wo:<id>    SET   the dependencies of job <id> that have not completed
-- KEYS[4]  {ns:q}:got:<id>   SET   ends of its dependencies that came before the job was
--                                  stored: an id (completed) or "!" and the note (failed)
-- KEYS[5]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[6]  {ns:q}:sched      ZSET  ids stored as 'scheduled', by run_at
-- KEYS[7]  {ns:q}:wake       LIST  wake-up tokens for idle workers
-- KEYS[8]  {ns:q}:parents    SET   jobs of the queue some job waits for (a job of the same
-- KEYS[9]  {ns:q}:deps_todo  ZSET  enqueue may already wait for this one: cancelled, it is
--                                  put in the to-do set for the caller to tell them)
-- KEYS[10] {ns:q}:expires    ZSET  ids of jobs with an expiry, by it (sweep.lua)
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  id
-- ARGV[3]  payload
-- ARGV[4]  m, "priority|max_attempts|timeout|created_at"
-- ARGV[5]  run_at
-- ARGV[6]  its dependencies' ids, space-separated (field af, for dependencies())
-- ARGV[7]  now
-- ARGV[8]  the note when a dependency ended dead or cancelled ("" if none did)
-- ARGV[9]  its expiry ("" = none): counted from enqueue, waiting included (sweep.lua)
-- ARGV[10] for a job of a limit's bucket: its queue's prefix "{ns:q}:" ("" otherwise)
-- ARGV[11] the bucket's queue name (made ready here, it joins its queue's buckets and ready
--          set, as deps_release.lua does)
-- ARGV[12…] the dependencies still to complete
--
-- Returns the state stored: waiting, pending, scheduled or cancelled ("" when the job was
-- stored by an earlier try of this call).
local prefix, id, now = ARGV[1], ARGV[2], ARGV[7]
local key = prefix .. 'j:' .. id
--#include deps_ready
if redis.call('EXISTS', key) == 1 then return '' end
--#include batch_moved
redis.call('HSET', key, 'p', ARGV[3], 'm', ARGV[4], 's', 'waiting', 'ra', ARGV[5], 'af', ARGV[6])
if ARGV[9] ~= '' then
  redis.call('HSET', key, 'x', ARGV[9])
  redis.call('ZADD', KEYS[10], ARGV[9], id)
end
local note = ARGV[8]
local done = {}
for _, got in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if string.sub(got, 1, 1) == '!' then
    if note == '' then note = string.sub(got, 2) end
  else
    done[got] = true
  end
end
redis.call('DEL', KEYS[4])
if note ~= '' then
  redis.call('HSET', key, 's', 'cancelled', 'e', note, 'fa', now)
  redis.call('ZADD', KEYS[2], now, id)
  batch_moved(id, 'waiting', 'cancelled')  -- a job of a batch counts as cancelled there
  if redis.call('SREM', KEYS[8], id) == 1 then redis.call('ZADD', KEYS[9], now, id) end
  return 'cancelled'
end
local left = {}
for i = 12, #ARGV do
  if not done[ARGV[i]] then left[#left + 1] = ARGV[i] end
end
if #left > 0 then
  -- In slices: unpack() of more than about 8,000 values overflows Lua's stack.
  for s = 1, #left, 1000 do
    redis.call('SADD', KEYS[3], unpack(left, s, math.min(s + 999, #left)))
  end
  redis.call('ZADD', KEYS[1], now, id)
  return 'waiting'
end
-- Nothing left to wait for: ready as an enqueue makes it (enqueue.lua).
local p = string.match(ARGV[4], '^(%-?%d+)|') or '0'
local run_at = ARGV[5]
return made_ready(key, id, p, run_at, now, KEYS[5], KEYS[6], KEYS[7], ARGV[10], ARGV[11])
