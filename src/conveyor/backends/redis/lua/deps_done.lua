-- deps_done: every dependent of these ended jobs has been told (released or cancelled): they
-- leave the to-do set. Their lists of dependents are kept a while for the dashboard. One call
-- for the ended jobs of one queue that one round told (a call per job was as many script
-- runs as an acknowledgement had parents with dependents).
--
-- KEYS[1]   {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- KEYS[2…]  {ns:q}:dn:<id>    SET   the jobs that waited for job <id>, for each id below
-- ARGV[1]   seconds a list of dependents is kept
-- ARGV[2…]  the ended jobs' ids, in the order of their KEYS
for i = 2, #KEYS do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return #KEYS - 1
