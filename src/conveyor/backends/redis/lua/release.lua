-- release: hand jobs of one queue back unrun (worker shutdown); the attempt is not counted.
--
-- KEYS[1]  {ns:q}:prios          ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:held:<worker>  SET   ids this worker holds
-- KEYS[3]  {ns:q}:wake           LIST  wake-up tokens for idle workers
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  worker id
-- ARGV[3]  most wake-up tokens to keep
-- ARGV[4…] job ids
--
-- Returns how many jobs went back to pending (only those this worker still held).
local prefix, worker = ARGV[1], ARGV[2]
local changed = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = prefix .. 'j:' .. id
  local v = redis.call('HMGET', key, 's', 'lb', 'm', 'ra', 'a')
  if v[1] == 'active' and v[2] == worker then
    local p = string.match(v[3] or '', '^(%-?%d+)|') or '0'  -- m starts with the priority; garbage: 0
    local attempts = math.max((tonumber(v[5]) or 1) - 1, 0)
    redis.call('HSET', key, 's', 'pending', 'a', tostring(attempts))
    redis.call('HDEL', key, 'lb', 'lu', 'sa')
    redis.call('SREM', KEYS[2], id)
    redis.call('ZADD', prefix .. 'w:' .. p, v[4] or '0', id)
    redis.call('ZADD', KEYS[1], p, p)
    changed = changed + 1
  end
end
if changed > 0 then
  local cap = tonumber(ARGV[3])
  local tokens = {}
  for i = 1, math.min(changed, cap) do tokens[i] = '1' end
  redis.call('LPUSH', KEYS[3], unpack(tokens))
  redis.call('LTRIM', KEYS[3], 0, cap - 1)
end
return changed
