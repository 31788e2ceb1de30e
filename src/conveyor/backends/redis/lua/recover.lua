-- recover: housekeeping of one queue. Expired leases go to retry (or dead with no attempts
-- left) as "worker lost"; completed jobs finished before a time are deleted; per-minute
-- counters older than a day are dropped (at most once a minute).
--
-- KEYS[1]  {ns:q}:leases   ZSET  worker id by the earliest lease of the jobs it holds
-- KEYS[2]  {ns:q}:dead     ZSET  dead job ids by finished_at
-- KEYS[3]  {ns:q}:retry    ZSET  ids stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:prios    ZSET  priorities that have waiting jobs
-- KEYS[5]  {ns:q}:done     ZSET  completed job ids by finished_at
-- KEYS[6]  {ns:q}:counts   HASH  p:<minute> / f:<minute>
-- KEYS[7]  {ns:q}:pruned   STRING set while the counters were pruned recently
-- KEYS[8]  {ns:q}:sched    ZSET  ids stored as 'scheduled', by run_at
-- KEYS[9]  {ns:q}:cancelled ZSET cancelled job ids by finished_at
-- KEYS[10] {ns:q}:cancel   SET   running jobs asked to stop
-- KEYS[11] {ns:q}:waited   SET   jobs someone waits for (watch.lua)
-- KEYS[12] {ns:q}:parents    SET   jobs some job waits for (deps_link.lua)
-- KEYS[13] {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  now
-- ARGV[3]  delete completed jobs finished before this time
-- ARGV[4]  minute start for the counters
-- ARGV[5]  the error text of a lost run
-- ARGV[6]  drop counters of minutes before this one
-- ARGV[7]  a waiting job due after this time was not written by conveyor: it goes to dead
-- ARGV[8]  the error text for such a job
-- ARGV[9]  completed jobs deleted at most (the caller calls again while a call deletes as
--          many: every other part of this script costs only what it finds)
--
-- Returns {recovered, more, id of each deleted completed job…}: the caller drops those ids
-- from the namespace's id index (a leftover entry only makes get() look once more and miss).
-- more: 1 if the queue's batch outboxes ({ns:q}:bmoves, {ns:q}:bout) hold moves, plus 2 if
-- its deps_todo set holds ends whose dependents are to be told: housekeeping reads those of
-- the queues that have them only, not a command per queue and outbox.
local prefix, now = ARGV[1], ARGV[2]
local nownum = tonumber(now)
local recovered = 0
-- Wakes whoever waits for a job that just ended (see watch.lua).
local watched = redis.call('EXISTS', KEYS[11]) == 1
-- Jobs some job waits for (workflows.py): an end is put in the to-do set, and the caller
-- tells their dependents (one EXISTS per call for queues without any).
local parents = redis.call('EXISTS', KEYS[12]) == 1
local told = 0
local function tell(id)
  if parents and redis.call('SREM', KEYS[12], id) == 1 then
    redis.call('ZADD', KEYS[13], now, id)
    told = told + 1
  end
end
local function ended(id)
  tell(id)
  if watched and redis.call('SREM', KEYS[11], id) == 1 then
    local token = prefix .. 'ended:' .. id
    redis.call('LPUSH', token, '1')
    redis.call('EXPIRE', token, 300)
  end
end

--#include batch_moved

-- v: s lb a m lu cx of the job's hash; m is "priority|max_attempts|timeout|created_at".
-- A lost run of a job asked to stop ends cancelled, with the note of whoever asked.
local function lost(id, key, v)
  local p = string.match(v[4] or '', '^(%-?%d+)|')
  local max_attempts = string.match(v[4] or '', '^[^|]*|([^|]*)')
  if v[6] then
    redis.call('HSET', key, 's', 'cancelled', 'fa', now, 'e', v[6])
    redis.call('ZADD', KEYS[9], now, id)
    redis.call('SREM', KEYS[10], id)
    ended(id)
    batch_moved(id, 'active', 'cancelled')
  elseif (tonumber(v[3]) or 0) >= (tonumber(max_attempts) or 1) then
    redis.call('HSET', key, 's', 'dead', 'ra', now, 'fa', now, 'e', ARGV[5])
    redis.call('ZADD', KEYS[2], now, id)
    ended(id)
    batch_moved(id, 'active', 'dead')
  else
    p = p or '0'  -- hand-written garbage: 0
    redis.call('HSET', key, 's', 'retry', 'ra', now, 'fa', now, 'e', ARGV[5])
    redis.call('HDEL', key, 'pg')
    redis.call('ZADD', prefix .. 'w:' .. p, now, id)
    redis.call('ZADD', KEYS[4], p, p)
    redis.call('ZADD', KEYS[3], now, id)
  end
  redis.call('HDEL', key, 'lb', 'lu', 'tb')
  recovered = recovered + 1
end

-- Workers whose earliest lease has passed: each of their jobs is checked against its own
-- lease (lu), so a job fetched later, or extended, stays with its worker.
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 100)) do
  local held = prefix .. 'held:' .. worker
  local earliest, earliest_text = nil, nil
  for _, id in ipairs(redis.call('SMEMBERS', held)) do
    local key = prefix .. 'j:' .. id
    local v = redis.call('HMGET', key, 's', 'lb', 'a', 'm', 'lu', 'cx')
    if v[1] ~= 'active' or v[2] ~= worker then
      redis.call('SREM', held, id)  -- deleted or moved meanwhile: not this worker's any more
    else
      local lease = tonumber(v[5]) or 0
      if lease ~= lease then lease = 0 end  -- a hand-written 'nan'
      if lease < nownum then
        redis.call('SREM', held, id)
        lost(id, key, v)
      elseif earliest == nil or lease < earliest then
        earliest, earliest_text = lease, v[5]
      end
    end
  end
  if earliest then
    redis.call('ZADD', KEYS[1], earliest_text, worker)
  else
    redis.call('ZREM', KEYS[1], worker)
  end
end
if recovered > 0 then
  redis.call('HINCRBY', KEYS[6], 'p:' .. ARGV[4], recovered)
  redis.call('HINCRBY', KEYS[6], 'f:' .. ARGV[4], recovered)
end

-- Waiting jobs due absurdly far ahead (a hand-written 1e300 or inf) would wait for ever.
for _, p in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local wkey = prefix .. 'w:' .. p
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', wkey, '(' .. ARGV[7], '+inf', 'LIMIT', 0, 1000)) do
    redis.call('HSET', prefix .. 'j:' .. id, 's', 'dead', 'fa', now, 'e', ARGV[8])
    redis.call('ZREM', wkey, id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[8], id)
    redis.call('ZADD', KEYS[2], now, id)
    ended(id)
    batch_moved(id, 'waiting', 'dead')
  end
  if redis.call('ZCARD', wkey) == 0 then redis.call('ZREM', KEYS[4], p) end
end

local out = {recovered, 0}
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[3], 'LIMIT', 0, tonumber(ARGV[9] or 1000))
for i = 1, #old, 1000 do
  local j = math.min(i + 999, #old)
  local keys = {}
  for k = i, j do
    keys[#keys + 1] = prefix .. 'j:' .. old[k]
    out[#out + 1] = old[k]
  end
  redis.call('DEL', unpack(keys))
  if batched then redis.call('HDEL', prefix .. 'bj', unpack(old, i, j)) end
  redis.call('ZREM', KEYS[5], unpack(old, i, j))
end

-- pcall: on a full store (maxmemory, noeviction) this mark may be refused; the pruning of
-- counters then waits for a later call, and the rest of housekeeping still runs.
local mark = redis.pcall('SET', KEYS[7], '1', 'NX', 'PX', 60000)
if mark and not mark.err then
  local cutoff = tonumber(ARGV[6])
  for _, field in ipairs(redis.call('HKEYS', KEYS[6])) do
    local minute = tonumber(string.sub(field, 3))
    if minute == nil or minute < cutoff then
      redis.call('HDEL', KEYS[6], field)
    end
  end
end
-- (Last: the moves and ends this call made are in.)
if redis.call('EXISTS', prefix .. 'bmoves', prefix .. 'bout') > 0 then out[2] = 1 end
if redis.call('EXISTS', KEYS[13]) == 1 then out[2] = out[2] + 2 end
return out
