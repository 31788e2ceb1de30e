-- progress: store a running job's progress, while this worker holds it.
--
-- KEYS[1]  {ns:q}:j:<id>  HASH  the job
-- ARGV[1]  worker id
-- ARGV[2]  the progress (JSON)
--
-- Returns 1 when stored, 0 when the job is not this worker's running job any more.
local v = redis.call('HMGET', KEYS[1], 's', 'lb')
if v[1] ~= 'active' or v[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'pg', ARGV[2])
return 1
