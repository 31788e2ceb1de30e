-- deps_done: every dependent of an ended job has been told (released or cancelled): it
-- leaves the to-do set. Its list of dependents is kept a while for the dashboard.
--
-- KEYS[1]  {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- KEYS[2]  {ns:q}:dn:<id>    SET   the jobs that waited for job <id>
-- ARGV[1]  the ended job's id
-- ARGV[2]  seconds its list of dependents is kept
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
