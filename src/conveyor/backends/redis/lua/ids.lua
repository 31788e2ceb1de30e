-- ids: the ids of one queue's jobs in a state, for the admin listing (read only).
--
-- KEYS[1]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:sched      ZSET  ids stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:retry      ZSET  ids stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:leases     ZSET  ids of the workers holding jobs (their held sets)
-- KEYS[5]  {ns:q}:done       ZSET  completed job ids
-- KEYS[6]  {ns:q}:dead       ZSET  dead job ids
-- KEYS[7]  {ns:q}:cancelled  ZSET  cancelled job ids
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  state ("" = every job); 'pending' includes due scheduled and retry jobs,
--          'scheduled' and 'retry' only those not due yet
-- ARGV[3]  now
-- ARGV[4]  at most this many ids (0 = all); with a limit, which ones is not specified
--
-- Returns the ids, unordered (the caller sorts newest first).
local prefix, state, now = ARGV[1], ARGV[2], ARGV[3]
local limit = tonumber(ARGV[4]) or 0
local out = {}
local function add(list)
  for _, id in ipairs(list) do
    if limit > 0 and #out >= limit then return end
    out[#out + 1] = id
  end
end
-- How many more a range may return ('-1': no limit): a limited call reads only what it needs.
local function room()
  if limit == 0 then return -1 end
  return math.max(limit - #out, 0)
end
if state == '' or state == 'pending' then
  local high = state == '' and '+inf' or now
  for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if room() ~= 0 then add(redis.call('ZRANGEBYSCORE', prefix .. 'w:' .. p, '-inf', high, 'LIMIT', 0, room())) end
  end
end
if state == 'scheduled' then add(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, room())) end
if state == 'retry' then add(redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf', 'LIMIT', 0, room())) end
if state == '' or state == 'active' then
  for _, worker in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    add(redis.call('SMEMBERS', prefix .. 'held:' .. worker))
  end
end
-- The last index of a ZRANGE that reads at most room() members.
local function last()
  if limit == 0 then return -1 end
  return room() - 1
end
if (state == '' or state == 'completed') and room() ~= 0 then add(redis.call('ZRANGE', KEYS[5], 0, last())) end
if (state == '' or state == 'dead') and room() ~= 0 then add(redis.call('ZRANGE', KEYS[6], 0, last())) end
if (state == '' or state == 'cancelled') and room() ~= 0 then add(redis.call('ZRANGE', KEYS[7], 0, last())) end
return out
