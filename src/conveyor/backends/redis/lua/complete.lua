-- complete: mark jobs of one queue completed, if this worker still holds them.
--
-- KEYS[1]  {ns:q}:done           ZSET  completed job ids by finished_at
-- KEYS[2]  {ns:q}:counts         HASH  p:<minute> / f:<minute> -> processed / failed
-- KEYS[3]  {ns:q}:held:<worker>  SET   ids this worker holds
-- KEYS[4]  {ns:q}:waited         SET   jobs someone waits for (watch.lua)
-- KEYS[5] {ns:q}:parents    SET   jobs some job waits for (deps_link.lua)
-- KEYS[6] {ns:q}:deps_todo  ZSET  ended jobs whose dependents are still to be told
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  worker id
-- ARGV[3]  now
-- ARGV[4]  counter field for this minute, "p:<minute start>"
-- ARGV[5]  one character per job: "1" = has a result, "0" = no result (None)
-- ARGV[6…] 2 per job: id, result ("" when ARGV[5] says none)
--
-- Returns how many jobs were completed; a list {completed, forwarded, …} when jobs of a batch
-- were among them (the caller then forwards them: batches.py) or jobs others wait for (then
-- from the third value, per such job: id, state, n, its n dependents "queue,id";
-- workflows.told). A job recovered meanwhile (another holder, or no
-- longer active) is left alone. The worker's held set says which jobs it still holds (every
-- script that ends or moves a lease removes the id from it), so one SMISMEMBER per slice
-- checks them all without reading a job.
--
-- A completed hash keeps its last lb, lu, e and tb: readers ignore them once s is
-- 'completed' (deleting them cost a command per job, a tenth of the script).
local prefix, now, flags = ARGV[1], ARGV[3], ARGV[5]
local SLICE = 1000
local done = {}
local ndone = 0
-- Wakes whoever waits for a job that just ended (see watch.lua).
local watched = redis.call('EXISTS', KEYS[4]) == 1
-- Jobs some job waits for (workflows.py): an ended one goes into the to-do set, and its
-- state and dependents are returned, so that the caller tells them in its next round-trip
-- (one EXISTS per call for queues without any).
local parents = redis.call('EXISTS', KEYS[5]) == 1
local told = {}
local function tell(id)
  if parents and redis.call('SREM', KEYS[5], id) == 1 then
    redis.call('ZADD', KEYS[6], now, id)
    local members = redis.call('SMEMBERS', prefix .. 'dn:' .. id)
    told[#told + 1] = id
    told[#told + 1] = redis.call('HGET', prefix .. 'j:' .. id, 's') or ''
    told[#told + 1] = #members
    for _, member in ipairs(members) do told[#told + 1] = member end
  end
end
local function ended(id)
  tell(id)
  if watched and redis.call('SREM', KEYS[4], id) == 1 then
    local token = prefix .. 'ended:' .. id
    redis.call('LPUSH', token, '1')
    redis.call('EXPIRE', token, 300)
  end
end

--#include batch_moved

local function complete(n, id)
  local key = prefix .. 'j:' .. id
  if string.byte(flags, n) == 49 then  -- "1": a result to keep
    redis.call('HSET', key, 's', 'completed', 'fa', now, 'r', ARGV[5 + 2 * n])
  else
    redis.call('HSET', key, 's', 'completed', 'fa', now)
  end
  ndone = ndone + 1
  done[ndone] = id
  ended(id)
  batch_moved_later(id, 'active', 'completed')
end

local count = (#ARGV - 5) / 2
for first = 1, count, SLICE do
  local last = math.min(first + SLICE - 1, count)
  local ids = {}
  for n = first, last do ids[n - first + 1] = ARGV[4 + 2 * n] end
  local held = redis.pcall('SMISMEMBER', KEYS[3], unpack(ids))
  if held.err then
    -- Before Redis 6.2: one SREM per job both checks and releases the hold.
    for n = first, last do
      if redis.call('SREM', KEYS[3], ids[n - first + 1]) == 1 then complete(n, ids[n - first + 1]) end
    end
  else
    local mine = {}
    for n = first, last do
      if held[n - first + 1] == 1 then mine[#mine + 1] = n end
    end
    -- The holds go first: a write that frees memory. At maxmemory with noeviction Redis
    -- refuses only a script whose first write may grow memory, so completions still land.
    local freed = {}
    for k, n in ipairs(mine) do freed[k] = ids[n - first + 1] end
    if #freed > 0 then
      redis.call('SREM', KEYS[3], unpack(freed))
      batch_prefetch(freed)
    end
    for _, n in ipairs(mine) do complete(n, ids[n - first + 1]) end
  end
end

-- Redis keeps a small sorted set (up to 128 members of up to 64 bytes) as a flat list, where
-- each insertion scans and shifts the list: a queue's first 128 completions cost the server
-- ~1 ms a batch, three times the rest (200 queues of 100 jobs: 12 µs a job against 4). So a
-- new done set starts as a skiplist: its first member is a filler longer than a flat list
-- takes, removed once the real ones are in (a sorted set never turns back into a list).
local filler = nil
if ndone > 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  filler = string.rep('\0', 65)  -- (no job id holds a NUL byte)
end
for i = 1, ndone, SLICE do
  local j = math.min(i + SLICE - 1, ndone)
  local scored = {}
  if filler then
    scored[1], scored[2] = now, filler
  end
  local o = #scored
  for k = i, j do
    scored[o + 2 * (k - i) + 1] = now
    scored[o + 2 * (k - i) + 2] = done[k]
  end
  redis.call('ZADD', KEYS[1], unpack(scored))
  if filler then
    redis.call('ZREM', KEYS[1], filler)
    filler = nil
  end
end
if ndone > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[4], ndone)
end
batch_flush()
if forwarded > 0 or #told > 0 then
  -- {count, batch moves forwarded, then per parent told: id, state, n, its n dependents}
  local out = {ndone, forwarded}
  for _, value in ipairs(told) do out[#out + 1] = value end
  return out
end
return ndone
