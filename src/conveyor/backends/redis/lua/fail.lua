-- fail: record failed runs of jobs of one queue held by this worker: retry later, dead, or
-- cancelled (a run stopped because app.cancel asked).
--
-- KEYS[1]  {ns:q}:dead           ZSET  dead job ids by finished_at
-- KEYS[2]  {ns:q}:retry          ZSET  ids stored as 'retry', by run_at
-- KEYS[3]  {ns:q}:prios          ZSET  priorities that have waiting jobs
-- KEYS[4]  {ns:q}:counts         HASH  p:<minute> / f:<minute>
-- KEYS[5]  {ns:q}:held:<worker>  SET   ids this worker holds
-- KEYS[6]  {ns:q}:cancelled      ZSET  cancelled job ids by finished_at
-- KEYS[7]  {ns:q}:cancel         SET   running jobs asked to stop
-- KEYS[8]  {ns:q}:sched          ZSET  ids stored as 'scheduled', by run_at (snoozed jobs)
-- KEYS[9]  {ns:q}:waited         SET   jobs someone waits for (watch.lua)
-- KEYS[10] {ns:q}:parents    SET   jobs some job waits for (deps_link.lua)
-- KEYS[11] {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  worker id
-- ARGV[3]  now
-- ARGV[4]  minute start (counter fields p:<minute> and f:<minute>)
-- ARGV[5]  one character per failure: "1" = has a traceback
-- ARGV[6…] 4 per failure: id, retry_at ("" = dead, "c" = cancelled, "s<time>" = snoozed
--          until that time: scheduled again, the attempt not counted), error, traceback
--
-- Returns how many failures were recorded (a list {recorded, forwarded, …} when jobs of a
-- batch, or jobs others wait for, ended: see complete.lua); each counts as processed, and as failed unless
-- it was a snooze.
local prefix, worker, now, flags = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local n, changed, snoozed = 0, 0, 0
-- Wakes whoever waits for a job that just ended (see watch.lua).
local watched = redis.call('EXISTS', KEYS[9]) == 1
-- Jobs some job waits for (workflows.py): an ended one goes into the to-do set, and its
-- state and dependents are returned, so that the caller tells them in its next round-trip
-- (one EXISTS per call for queues without any).
local parents = redis.call('EXISTS', KEYS[10]) == 1
local told = {}
local function tell(id)
  if parents and redis.call('SREM', KEYS[10], id) == 1 then
    redis.call('ZADD', KEYS[11], now, id)
    local members = redis.call('SMEMBERS', prefix .. 'dn:' .. id)
    told[#told + 1] = id
    told[#told + 1] = redis.call('HGET', prefix .. 'j:' .. id, 's') or ''
    told[#told + 1] = #members
    for _, member in ipairs(members) do told[#told + 1] = member end
  end
end
local function ended(id)
  tell(id)
  if watched and redis.call('SREM', KEYS[9], id) == 1 then
    local token = prefix .. 'ended:' .. id
    redis.call('LPUSH', token, '1')
    redis.call('EXPIRE', token, 300)
  end
end
--#include batch_moved
for i = 6, #ARGV, 4 do
  n = n + 1
  local id, retry_at = ARGV[i], ARGV[i + 1]
  local key = prefix .. 'j:' .. id
  local v = redis.call('HMGET', key, 's', 'lb', 'm')
  if v[1] == 'active' and v[2] == worker then
    if retry_at == '' then
      redis.call('HSET', key, 's', 'dead', 'e', ARGV[i + 2], 'fa', now)
      redis.call('ZADD', KEYS[1], now, id)
      ended(id)
      batch_moved_later(id, 'active', 'dead')
    elseif string.byte(retry_at, 1) == 115 then  -- "s": snoozed
      local at = string.sub(retry_at, 2)
      local p = string.match(v[3] or '', '^(%-?%d+)|') or '0'
      local attempts = math.max((tonumber(redis.call('HGET', key, 'a')) or 1) - 1, 0)
      redis.call('HSET', key, 's', 'scheduled', 'ra', at, 'a', tostring(attempts))
      redis.call('HINCRBY', key, 'sn', 1)
      redis.call('HDEL', key, 'pg')
      redis.call('ZADD', prefix .. 'w:' .. p, at, id)
      redis.call('ZADD', KEYS[3], p, p)
      redis.call('ZADD', KEYS[8], at, id)
      snoozed = snoozed + 1
    elseif retry_at == 'c' then
      redis.call('HSET', key, 's', 'cancelled', 'e', ARGV[i + 2], 'fa', now)
      redis.call('ZADD', KEYS[6], now, id)
      redis.call('SREM', KEYS[7], id)
      ended(id)
      batch_moved_later(id, 'active', 'cancelled')
    else
      local p = string.match(v[3] or '', '^(%-?%d+)|') or '0'  -- m starts with the priority; garbage: 0
      redis.call('HSET', key, 's', 'retry', 'ra', retry_at, 'e', ARGV[i + 2], 'fa', now)
      redis.call('HDEL', key, 'pg')
      redis.call('ZADD', prefix .. 'w:' .. p, retry_at, id)
      redis.call('ZADD', KEYS[3], p, p)
      redis.call('ZADD', KEYS[2], retry_at, id)
    end
    if string.sub(flags, n, n) == '1' then
      redis.call('HSET', key, 'tb', ARGV[i + 3])
      redis.call('HDEL', key, 'lb', 'lu')
    else
      redis.call('HDEL', key, 'lb', 'lu', 'tb')
    end
    redis.call('SREM', KEYS[5], id)
    changed = changed + 1
  end
end
if changed > 0 then
  redis.call('HINCRBY', KEYS[4], 'p:' .. ARGV[4], changed)
  if changed > snoozed then redis.call('HINCRBY', KEYS[4], 'f:' .. ARGV[4], changed - snoozed) end
end
batch_flush()
if forwarded > 0 or #told > 0 then
  -- {count, batch moves forwarded, then per parent told: id, state, n, its n dependents}
  local out = {changed, forwarded}
  for _, value in ipairs(told) do out[#out + 1] = value end
  return out
end
return changed
