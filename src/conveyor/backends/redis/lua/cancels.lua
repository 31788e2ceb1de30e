-- cancels: the running jobs of one queue, held by this worker, that were asked to stop.
--
-- KEYS[1]  {ns:q}:cancel  SET  running jobs asked to stop
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  worker id
--
-- Returns {id, note, id, note…} of this worker's jobs. Ids of jobs no longer running
-- (completed before their worker saw the request, deleted) leave the set here: the set only
-- holds outstanding requests, so this reads a handful of members.
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. 'j:' .. id, 's', 'lb', 'cx')
  if v[1] ~= 'active' or not v[3] then
    redis.call('SREM', KEYS[1], id)
  elseif v[2] == ARGV[2] then
    out[#out + 1] = id
    out[#out + 1] = v[3]
  end
end
return out
