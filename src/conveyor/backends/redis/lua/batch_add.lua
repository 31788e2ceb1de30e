-- batch_add: open an intake of more jobs into a batch, if it is open (some job it counts has
-- not ended, it counts none yet, or another intake is still storing its jobs). The jobs are
-- counted as their ids are listed (batch_ids.lua), and nothing is decided for the batch until
-- the intake is sealed (batch_seal.lua).
--
-- KEYS[1]  {ns:b}:h:<id>  HASH  the batch (batch_create.lua)
-- KEYS[2]  {ns:b}:intake  ZSET  intakes not yet sealed, by deadline (batch_create.lua)
-- ARGV[1]  the intake's member
-- ARGV[2]  the intake's deadline
--
-- Returns 1 (open: the caller lists and stores the jobs now) or 0 (closed or gone: nothing
-- changed).
local v = redis.call('HMGET', KEYS[1], 't', 'c', 'd', 'x', 'u')
if not v[1] then return 0 end
local total = tonumber(v[1])
if total > 0 and (tonumber(v[5]) or 0) == 0
    and tonumber(v[2]) + tonumber(v[3]) + tonumber(v[4]) >= total then
  return 0
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'u', 1)
end
return 1
