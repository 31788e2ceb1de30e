-- hints_read: Cluster. What a fetch reads of the namespace's hints and queue registry, each
-- only when it changed since the caller last read it (see store.py, _fetch_slots): with
-- hundreds of busy queues both are hundreds of fields, and a fetch read them whole.
--
-- KEYS[1]  {ns}:hints   HASH    queue -> token of the last write that made a job wait there
-- KEYS[2]  {ns}:hintv   STRING  a count each write of hints raises, after its HSET (a drop
--                               does not: a hint read and dropped since costs a fetch a look)
-- KEYS[3]  {ns}:queues  SET     every queue ever used
-- ARGV[1]  the count the caller read last ("": the hints in any case)
-- ARGV[2]  the registry's size the caller read last ("": in any case; "-": not at all)
--
-- Returns {count, the hints (HGETALL) or false when the count is ARGV[1], the registry's
-- size, its members (SMEMBERS) or false when the size is ARGV[2]}. The registry only grows
-- (a queue is never unregistered), so its size says whether it changed.
local count = redis.call('GET', KEYS[2]) or '0'
local hints = false
if count ~= ARGV[1] then
  hints = redis.call('HGETALL', KEYS[1])
end
local size, members = false, false
if ARGV[2] ~= '-' then
  size = redis.call('SCARD', KEYS[3])
  if tostring(size) ~= ARGV[2] then
    members = redis.call('SMEMBERS', KEYS[3])
  end
end
return {count, hints, size, members}
