-- watch: someone waits for a job to end (job.result, job.aresult): add it to the queue's
-- waited set, which the scripts that end jobs look at, unless it has ended already.
--
-- KEYS[1]  {ns:q}:waited  SET  jobs someone waits for
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  job id
--
-- Returns the job's state (false: no such job in this queue). Once it is waited for, the
-- script that ends it (complete, fail, recover, act) pushes a token to {ns:q}:ended:<id>,
-- where the waiter blocks in BLPOP; the set is read once per call of those scripts, so jobs
-- nobody waits for pay one EXISTS per batch, not a command per job.
local s = redis.call('HGET', ARGV[1] .. 'j:' .. ARGV[2], 's')
if not s then return false end
if s ~= 'completed' and s ~= 'dead' and s ~= 'cancelled' then
  redis.call('SADD', KEYS[1], ARGV[2])
end
return s
