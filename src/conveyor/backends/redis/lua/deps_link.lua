-- deps_link: record that a job (of any queue) waits for job ARGV[2] of this queue, unless
-- that one ended already. The first step of a dependent's enqueue (see workflows.py); the
-- parent's end, in this slot, is the other side of the same decision, so every edge is
-- either seen here as ended or found by the parent's end.
--
-- KEYS[1]  {ns:q}:parents    SET   jobs of the queue some job waits for (the scripts that
--                                  end a job check it once per call)
-- KEYS[2]  {ns:q}:dn:<id>    SET   the jobs waiting for job <id>: "queue,id" of each
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  the dependency's id
-- ARGV[3]  the dependent, "queue,id"
--
-- Returns the dependency's state when it ended (completed, dead, cancelled: nothing
-- recorded), 'missing' when there is no such job, else 'wait' (recorded).
local state = redis.call('HGET', ARGV[1] .. 'j:' .. ARGV[2], 's')
if not state then return 'missing' end
if state == 'completed' or state == 'dead' or state == 'cancelled' then return state end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[1], ARGV[2])
return 'wait'
