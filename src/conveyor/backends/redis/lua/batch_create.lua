-- batch_create: store a new batch (conveyor.batch): its callbacks' jobs, and an intake (the
-- jobs this call is about to store) that keeps it from deciding anything until they are.
-- Every batch key lives in the slot {ns:b}, so one script reads and writes any batch (a
-- nested batch's parent too).
--
-- KEYS[1]  {ns:b}:h:<id>  HASH  the batch: t total (jobs counted: batch_ids.lua counts them
--                               as their ids are listed, before any is stored), c completed,
--                               d dead, x cancelled, ca created_at, pa parent, u intakes not
--                               yet sealed (batch_seal.lua); per callback kind k: cb:k its
--                               job id, cq:k queue, cm:k "priority|max_attempts|timeout",
--                               cp:k payload, cf:k when fired (absent: not yet)
-- KEYS[2]  {ns:b}:intake  ZSET  "batch|c or a|first id|last id|count" of each intake not
--                               yet sealed, by the deadline after which housekeeping takes
--                               its creator for dead and repairs the batch (batches.py)
-- ARGV[1]  prefix "{ns:b}:"
-- ARGV[2]  created_at
-- ARGV[3]  parent batch id ("" = none): it must be open, and counts this batch's on_complete
-- ARGV[4]  the intake's member
-- ARGV[5]  the intake's deadline
-- ARGV[6…] 5 per callback: kind, job id, queue, meta, payload
--
-- Returns 1 (stored), 2 (it existed: a call re-sent after a lost reply) or 0 (the parent is
-- not open, or gone: nothing stored).
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
local parent = ARGV[3]
if parent ~= '' then
  local pkey = ARGV[1] .. 'h:' .. parent
  local v = redis.call('HMGET', pkey, 't', 'c', 'd', 'x', 'u')
  if not v[1] then return 0 end
  local total = tonumber(v[1])
  local ended = tonumber(v[2] or 0) + tonumber(v[3] or 0) + tonumber(v[4] or 0)
  if ended >= total and total > 0 and (tonumber(v[5]) or 0) == 0 then return 0 end
  redis.call('HINCRBY', pkey, 't', 1)
end
redis.call('HSET', KEYS[1], 't', 0, 'c', 0, 'd', 0, 'x', 0, 'ca', ARGV[2], 'pa', parent, 'u', 1)
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
for i = 6, #ARGV, 5 do
  local k = ARGV[i]
  redis.call('HSET', KEYS[1], 'cb:' .. k, ARGV[i + 1], 'cq:' .. k, ARGV[i + 2], 'cm:' .. k, ARGV[i + 3],
    'cp:' .. k, ARGV[i + 4])
end
return 1
