-- batch_add: count more jobs in a batch, if it is open (some job it counts has not ended,
-- or it counts none yet).
--
-- KEYS[1]  {ns:b}:h:<id>  HASH  the batch (batch_create.lua)
-- ARGV[1]  how many jobs to add
--
-- Returns 1 (counted: the caller stores the jobs now) or 0 (closed or gone: nothing changed).
local v = redis.call('HMGET', KEYS[1], 't', 'c', 'd', 'x')
if not v[1] then return 0 end
local total = tonumber(v[1])
if total > 0 and tonumber(v[2]) + tonumber(v[3]) + tonumber(v[4]) >= total then return 0 end
redis.call('HINCRBY', KEYS[1], 't', ARGV[1])
return 1
