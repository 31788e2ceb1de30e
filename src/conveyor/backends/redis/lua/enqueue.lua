-- enqueue: store new jobs of one queue, all of them or none.
--
-- KEYS[1]  {ns:q}:prios   ZSET  priorities that have waiting jobs (member = score = priority)
-- KEYS[2]  {ns:q}:sched   ZSET  ids of jobs stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:retry   ZSET  ids of jobs stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:wake    LIST  wake-up tokens for idle workers (BLPOP)
-- KEYS[5]  {ns}:where     HASH  job id -> queue      } only on a single server, where one
-- KEYS[6]  {ns}:queues    SET   every queue ever used } script may span slots; on Cluster
--                                                       the caller writes these first.
--                                 Jobs of the queue 'default' are not indexed: readers
--                                 look there first.
-- KEYS[7]  {ns:q}:buckets SET   only for a bucket (ARGV[6] = "b", see fetch_limited.lua):
-- KEYS[8]  {ns:q}:ready   ZSET  its queue's buckets ever used, and those with work, which it
--                                joins (on Cluster these two are KEYS[5] and KEYS[6]); its
--                                other keys are the bucket's, but KEYS[4], its queue's wake
-- ARGV[1]  prefix of the queue's keys, "{ns:q}:"
-- ARGV[2]  most waiting jobs the queue may hold ("" = no limit)
-- ARGV[3]  now: jobs due by then push wake-up tokens
-- ARGV[4]  most wake-up tokens to keep
-- ARGV[5]  the queue's name (for KEYS[5] and KEYS[6])
-- ARGV[6]  "1" to add the queue to KEYS[6]; "b" for a bucket
-- ARGV[7…] groups of jobs sharing their settings, each: count, priority, state, run_at,
--          meta (the hash's field m: "priority|max_attempts|timeout|created_at"), then
--          count × (id, payload). Jobs of one batch mostly share them, so each job costs
--          two arguments.
--
-- A job hash gets four fields: p, m, s, ra. The settings no script changes are one field,
-- m: a hash's fields are scanned one by one, and every field costs the store at enqueue
-- and at each read.
--
-- Returns {added}, or {-1, waiting} when the limit would be passed; then nothing is written.
-- A call is all or nothing, so when its first job exists the call was made before (redis-py
-- re-sends a call whose reply was lost) and it returns {0}: a retried call is harmless.
local prefix, queue = ARGV[1], ARGV[5]
local now = tonumber(ARGV[3])
local nkeys, every, ready = #KEYS, nil, nil
if ARGV[6] == 'b' then every, ready, nkeys = KEYS[#KEYS - 1], KEYS[#KEYS], #KEYS - 2 end
local indexed = nkeys >= 5 and queue ~= 'default'

-- The jobs in the call, counted from the group headers.
local count, i = 0, 7
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  count = count + n
  i = i + 5 + 2 * n
end
if count == 0 then return {0} end
-- ARGV[12] is the first job's id (ARGV[7..11] its group's header).
if redis.call('EXISTS', prefix .. 'j:' .. ARGV[12]) == 1 then return {0} end

if ARGV[2] ~= '' then
  local waiting = 0
  for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    waiting = waiting + redis.call('ZCARD', prefix .. 'w:' .. p)
  end
  if waiting + count > tonumber(ARGV[2]) then
    return {-1, waiting}
  end
end

-- Members are added in slices: unpack() of a whole 10,000-job batch would overflow Lua's
-- C stack, and one ZADD of many members costs far less than one per job.
local SLICE = 500
local function in_slices(command, key, values)
  for s = 1, #values, 2 * SLICE do
    redis.call(command, key, unpack(values, s, math.min(s + 2 * SLICE - 1, #values)))
  end
end

local due, earliest = 0, math.huge
local where, w = {}, 0
local jobs = prefix .. 'j:'
i = 7
while i <= #ARGV do
  local n, p, state, run_at, meta = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local scored, k = {}, 0
  i = i + 5
  for j = i, i + 2 * n - 1, 2 do
    local id = ARGV[j]
    redis.call('HSET', jobs .. id, 'p', ARGV[j + 1], 'm', meta, 's', state, 'ra', run_at)
    scored[k + 1], scored[k + 2], k = run_at, id, k + 2
    if indexed then
      where[w + 1], where[w + 2], w = id, queue, w + 2
    end
  end
  i = i + 2 * n
  in_slices('ZADD', prefix .. 'w:' .. p, scored)
  redis.call('ZADD', KEYS[1], p, p)
  if state == 'scheduled' then
    in_slices('ZADD', KEYS[2], scored)
  elseif state == 'retry' then
    in_slices('ZADD', KEYS[3], scored)
  end
  if tonumber(run_at) <= now then due = due + n end
  earliest = math.min(earliest, tonumber(run_at))
end
if indexed then in_slices('HSET', KEYS[5], where) end
if nkeys >= 6 and ARGV[6] == '1' then redis.call('SADD', KEYS[6], queue) end
if ready then
  redis.call('SADD', every, queue)
  -- By its first job's time (0 puts it first; fetch_limited keeps the score exact).
  local first = redis.call('ZSCORE', ready, queue)
  if not first or tonumber(first) > earliest then redis.call('ZADD', ready, earliest, queue) end
end

-- One token per due job, up to a cap: each wakes one idle worker blocked in BLPOP.
if due > 0 then
  local cap = tonumber(ARGV[4])
  local tokens = {}
  for t = 1, math.min(due, cap) do tokens[t] = '1' end
  if redis.call('LPUSH', KEYS[4], unpack(tokens)) > cap then
    redis.call('LTRIM', KEYS[4], 0, cap - 1)
  end
end
return {count}
