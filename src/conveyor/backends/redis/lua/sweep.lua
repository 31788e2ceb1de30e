-- sweep: housekeeping of job lifetimes in one queue, in bounded steps. Waiting jobs past
-- their expiry end cancelled ("expired"); dead and cancelled jobs that ended before a time,
-- and those the caller chose as beyond the namespace's limit, are deleted.
--
-- KEYS[1]  {ns:q}:expires    ZSET  ids of jobs with an expiry, by it
-- KEYS[2]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[3]  {ns:q}:sched      ZSET  ids stored as 'scheduled'
-- KEYS[4]  {ns:q}:retry      ZSET  ids stored as 'retry'
-- KEYS[5]  {ns:q}:dead       ZSET  dead job ids by finished_at
-- KEYS[6]  {ns:q}:cancelled  ZSET  cancelled job ids by finished_at
-- KEYS[7]  {ns:q}:parents    SET   jobs some job waits for (deps_link.lua)
-- KEYS[8]  {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- KEYS[9]  {ns:q}:waiting    ZSET  jobs waiting for others (deps_add.lua): one that expires
--                                  ends cancelled too, and leaves its set of dependencies
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  now
-- ARGV[3]  at most this many jobs of each kind
-- ARGV[4]  the error of an expired job
-- ARGV[5]  delete dead and cancelled jobs that ended before this time ("" = none by age)
-- ARGV[6…] ids of dead or cancelled jobs to delete (beyond the limit of their number)
--
-- Returns {expired, deleted id…}. An entry of KEYS[1] whose job no longer waits (it ran,
-- ended or is gone) is only dropped: entries are not removed on the hot path.
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local WAITING = {scheduled = true, pending = true, retry = true}
local out = {0}
-- An expired job some job waits for: its dependents are told by the caller (workflows.py).
local parents = redis.call('EXISTS', KEYS[7]) == 1

--#include batch_moved

for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  local key = prefix .. 'j:' .. id
  local v = redis.call('HMGET', key, 's', 'm')
  if WAITING[v[1] or ''] then
    local p = string.match(v[2] or '', '^(%-?%d+)|') or '0'
    local wkey = prefix .. 'w:' .. p
    redis.call('ZREM', wkey, id)
    if redis.call('ZCARD', wkey) == 0 then redis.call('ZREM', KEYS[2], p) end
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('HSET', key, 's', 'cancelled', 'fa', now, 'e', ARGV[4])
    redis.call('ZADD', KEYS[6], now, id)
    if parents and redis.call('SREM', KEYS[7], id) == 1 then redis.call('ZADD', KEYS[8], now, id) end
    batch_moved(id, v[1], 'cancelled')
    out[1] = out[1] + 1
  elseif v[1] == 'waiting' then
    redis.call('ZREM', KEYS[9], id)
    redis.call('DEL', prefix .. 'wo:' .. id)
    redis.call('HSET', key, 's', 'cancelled', 'fa', now, 'e', ARGV[4])
    redis.call('ZADD', KEYS[6], now, id)
    if parents and redis.call('SREM', KEYS[7], id) == 1 then redis.call('ZADD', KEYS[8], now, id) end
    batch_moved(id, 'waiting', 'cancelled')
    out[1] = out[1] + 1
  end
  redis.call('ZREM', KEYS[1], id)
end

local function delete(id)
  redis.call('DEL', prefix .. 'j:' .. id)
  if batched then redis.call('HDEL', prefix .. 'bj', id) end
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZREM', KEYS[6], id)
  out[#out + 1] = id
end

if ARGV[5] ~= '' then
  -- The oldest of both sets together, at most limit.
  local bound = '(' .. ARGV[5]
  local dead = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', bound, 'WITHSCORES', 'LIMIT', 0, limit)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', bound, 'WITHSCORES', 'LIMIT', 0, limit)
  local d, c, n = 1, 1, 0
  while n < limit and (d <= #dead or c <= #gone) do
    if c > #gone or (d <= #dead and tonumber(dead[d + 1]) <= tonumber(gone[c + 1])) then
      delete(dead[d])
      d = d + 2
    else
      delete(gone[c])
      c = c + 2
    end
    n = n + 1
  end
end

for i = 6, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[5], id) or redis.call('ZSCORE', KEYS[6], id) then delete(id) end
end
return out
