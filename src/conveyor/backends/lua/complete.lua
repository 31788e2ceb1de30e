-- complete: mark jobs of one queue completed, if this worker still holds them.
--
-- KEYS[1]  {ns:q}:active         ZSET  active job ids by lease expiry
-- KEYS[2]  {ns:q}:done           ZSET  completed job ids by finished_at
-- KEYS[3]  {ns:q}:counts         HASH  p:<minute> / f:<minute> -> processed / failed
-- KEYS[4]  {ns:q}:held:<worker>  SET   ids this worker holds
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  worker id
-- ARGV[3]  now
-- ARGV[4]  counter field for this minute, "p:<minute start>"
-- ARGV[5]  one character per job: "1" = has a result, "0" = no result (None)
-- ARGV[6…] 2 per job: id, result ("" when ARGV[5] says none)
--
-- Returns how many jobs were completed. A job recovered meanwhile (another holder, or no
-- longer active) is left alone. The worker's held set says which jobs it still holds (every
-- script that ends or moves a lease removes the id from it), so one SREM both checks and
-- releases the hold, without reading the job.
local prefix, worker, now, flags = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local done = {}
local n = 0
for i = 6, #ARGV, 2 do
  n = n + 1
  local id = ARGV[i]
  if redis.call('SREM', KEYS[4], id) == 1 then
    local key = prefix .. 'j:' .. id
    if string.sub(flags, n, n) == '1' then
      redis.call('HSET', key, 's', 'completed', 'fa', now, 'r', ARGV[i + 1])
    else
      redis.call('HSET', key, 's', 'completed', 'fa', now)
    end
    redis.call('HDEL', key, 'lb', 'lu', 'e', 'tb')
    done[#done + 1] = id
  end
end
for i = 1, #done, 1000 do
  local j = math.min(i + 999, #done)
  local scored = {}
  for k = i, j do
    scored[#scored + 1] = now
    scored[#scored + 1] = done[k]
  end
  redis.call('ZREM', KEYS[1], unpack(done, i, j))
  redis.call('ZADD', KEYS[2], unpack(scored))
end
if #done > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[4], #done)
end
return #done
