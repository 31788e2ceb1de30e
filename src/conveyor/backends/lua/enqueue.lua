-- enqueue: store new jobs of one queue, all of them or none.
--
-- KEYS[1]  {ns:q}:prios   ZSET  priorities that have waiting jobs (member = score = priority)
-- KEYS[2]  {ns:q}:sched   ZSET  ids of jobs stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:retry   ZSET  ids of jobs stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:wake    LIST  wake-up tokens for idle workers (BLPOP)
-- ARGV[1]  prefix of the queue's keys, "{ns:q}:"
-- ARGV[2]  most waiting jobs the queue may hold ("" = no limit)
-- ARGV[3]  now: jobs due by then push wake-up tokens
-- ARGV[4]  most wake-up tokens to keep
-- ARGV[5…] 8 per job: id, payload, priority, state, run_at, max_attempts,
--          timeout ("" = none), created_at
--
-- Returns {added}, or {-1, waiting} when the limit would be passed; then nothing is written.
-- An id that already exists is skipped, so a call retried after a lost reply is harmless.
local prefix = ARGV[1]

-- One token per due job, up to a cap: each wakes one idle worker blocked in BLPOP.
local function push_wake(key, n, cap)
  if n <= 0 then return end
  local tokens = {}
  for i = 1, math.min(n, cap) do tokens[i] = '1' end
  redis.call('LPUSH', key, unpack(tokens))
  redis.call('LTRIM', key, 0, cap - 1)
end
local count = (#ARGV - 4) / 8
local now = tonumber(ARGV[3])

if ARGV[2] ~= '' then
  local waiting = 0
  for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    waiting = waiting + redis.call('ZCARD', prefix .. 'w:' .. p)
  end
  if waiting + count > tonumber(ARGV[2]) then
    return {-1, waiting}
  end
end

local added, due = 0, 0
local known = {}
for i = 5, #ARGV, 8 do
  local id, p, state, run_at = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = prefix .. 'j:' .. id
  if redis.call('EXISTS', key) == 0 then
    if ARGV[i + 6] == '' then
      redis.call('HSET', key, 'p', ARGV[i + 1], 'pr', p, 's', state, 'ra', run_at, 'a', '0',
        'ma', ARGV[i + 5], 'ca', ARGV[i + 7])
    else
      redis.call('HSET', key, 'p', ARGV[i + 1], 'pr', p, 's', state, 'ra', run_at, 'a', '0',
        'ma', ARGV[i + 5], 'ca', ARGV[i + 7], 'to', ARGV[i + 6])
    end
    redis.call('ZADD', prefix .. 'w:' .. p, run_at, id)
    if not known[p] then
      redis.call('ZADD', KEYS[1], p, p)
      known[p] = true
    end
    if state == 'scheduled' then
      redis.call('ZADD', KEYS[2], run_at, id)
    elseif state == 'retry' then
      redis.call('ZADD', KEYS[3], run_at, id)
    end
    added = added + 1
    if tonumber(run_at) <= now then due = due + 1 end
  end
end
push_wake(KEYS[4], due, tonumber(ARGV[4]))
return {added}
