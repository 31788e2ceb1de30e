-- act: an admin action on jobs of one queue: retry, cancel or delete.
--
-- KEYS[1]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:sched      ZSET  ids stored as 'scheduled'
-- KEYS[3]  {ns:q}:retry      ZSET  ids stored as 'retry'
-- KEYS[4]  {ns:q}:leases     ZSET  (unused: an active job leaves its holder's held set)
-- KEYS[5]  {ns:q}:done       ZSET  completed job ids
-- KEYS[6]  {ns:q}:dead       ZSET  dead job ids
-- KEYS[7]  {ns:q}:cancelled  ZSET  cancelled job ids
-- KEYS[8]  {ns:q}:wake       LIST  wake-up tokens for idle workers (retry pushes one)
-- KEYS[9]  {ns:q}:cancel     SET   running jobs asked to stop (their workers poll it)
-- KEYS[10] {ns:q}:waited     SET   jobs someone waits for (watch.lua)
-- KEYS[11] {ns:q}:parents    SET   jobs some job waits for (deps_link.lua)
-- KEYS[12] {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- KEYS[13] {ns:q}:waiting    ZSET  jobs waiting for others (deps_add.lua)
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  action: retry | cancel | delete
-- ARGV[3]  now
-- ARGV[4]  only jobs in this state ("" = any), as the admin API counts states: 'pending'
--          includes due scheduled and retry jobs, 'scheduled' and 'retry' only those not due
-- ARGV[5]  cancel: the note (who cancelled), the last error of a cancelled job
-- ARGV[6…] job ids
--
-- Returns {changed, id…} listing the deleted ids (delete only).
-- retry: dead, cancelled, retry or scheduled jobs become pending now with attempts 0;
-- cancel: scheduled, pending, retry or waiting jobs become cancelled, and an active job is asked to
-- stop (field cx, once; its worker ends it cancelled); delete: any job is removed.
local prefix, action, now, only, note = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local nownum = tonumber(now)
local WAITING = {scheduled = true, pending = true, retry = true}
local RETRYABLE = {dead = true, cancelled = true, retry = true, scheduled = true}
local INDEX = {completed = KEYS[5], dead = KEYS[6], cancelled = KEYS[7]}
-- Wakes whoever waits for a job that just ended (see watch.lua).
local watched = redis.call('EXISTS', KEYS[10]) == 1
-- Jobs some job waits for (workflows.py): an end is put in the to-do set, and the caller
-- tells their dependents (one EXISTS per call for queues without any).
local parents = redis.call('EXISTS', KEYS[11]) == 1
local told = 0
local function tell(id)
  if parents and redis.call('SREM', KEYS[11], id) == 1 then
    redis.call('ZADD', KEYS[12], now, id)
    told = told + 1
  end
end
local function ended(id)
  tell(id)
  if watched and redis.call('SREM', KEYS[10], id) == 1 then
    local token = prefix .. 'ended:' .. id
    redis.call('LPUSH', token, '1')
    redis.call('EXPIRE', token, 300)
  end
end

--#include batch_moved

local function matches(state, run_at)
  if only == '' then return true end
  if only == 'pending' then return WAITING[state] and run_at <= nownum end
  if only == 'scheduled' or only == 'retry' then return state == only and run_at > nownum end
  return state == only
end

local function unindex(id, state, p, holder)
  if WAITING[state] then
    local wkey = prefix .. 'w:' .. p
    redis.call('ZREM', wkey, id)
    if redis.call('ZCARD', wkey) == 0 then redis.call('ZREM', KEYS[1], p) end
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  elseif INDEX[state] then
    redis.call('ZREM', INDEX[state], id)
  elseif state == 'waiting' then
    redis.call('ZREM', KEYS[13], id)
    redis.call('DEL', prefix .. 'wo:' .. id)
  end
  if holder then redis.call('SREM', prefix .. 'held:' .. holder, id) end
end

local out = {0}
local woken = false
for i = 6, #ARGV do
  local id = ARGV[i]
  local key = prefix .. 'j:' .. id
  local v = redis.call('HMGET', key, 's', 'ra', 'm', 'lb')
  local state, run_at = v[1], tonumber(v[2]) or 0
  local p = string.match(v[3] or '', '^(%-?%d+)|') or '0'  -- m starts with the priority; garbage: 0
  if state and matches(state, run_at) then
    if action == 'retry' and RETRYABLE[state] then
      unindex(id, state, p, false)
      if state == 'dead' or state == 'cancelled' then
        -- Back from the end, it holds its unique key no more: another job may hold it now.
        local u = redis.call('HGET', key, 'u')
        if u then
          if redis.call('GET', prefix .. 'u:' .. u) == id then redis.call('DEL', prefix .. 'u:' .. u) end
          redis.call('HDEL', key, 'u')
        end
      end
      redis.call('HSET', key, 's', 'pending', 'ra', now, 'a', '0')
      redis.call('HDEL', key, 'fa', 'pg', 'cx')
      if state == 'dead' or state == 'cancelled' then batch_moved(id, state, 'pending') end
      redis.call('ZADD', prefix .. 'w:' .. p, now, id)
      redis.call('ZADD', KEYS[1], p, p)
      out[1] = out[1] + 1
      woken = true
    elseif action == 'cancel' and (WAITING[state] or state == 'waiting') then
      unindex(id, state, p, false)
      redis.call('HSET', key, 's', 'cancelled', 'fa', now, 'e', note)
      redis.call('ZADD', KEYS[7], now, id)
      ended(id)
      batch_moved(id, state, 'cancelled')
      out[1] = out[1] + 1
    elseif action == 'cancel' and state == 'active' and redis.call('HSETNX', key, 'cx', note) == 1 then
      redis.call('SADD', KEYS[9], id)
      out[1] = out[1] + 1
    elseif action == 'delete' then
      unindex(id, state, p, v[4])
      redis.call('SREM', KEYS[9], id)
      redis.call('DEL', key)
      ended(id)
      if state ~= 'completed' and state ~= 'dead' and state ~= 'cancelled' then
        batch_moved(id, state, 'cancelled')  -- gone before it ended: it counts as cancelled
      end
      if batched then redis.call('HDEL', prefix .. 'bj', id) end
      out[1] = out[1] + 1
      out[#out + 1] = id
    end
  end
end
if woken then
  redis.call('LPUSH', KEYS[8], '1')
  redis.call('LTRIM', KEYS[8], 0, 15)
end
return out
