-- stats: counts of one queue by visible state, its oldest due job, and its counters
-- (read only).
--
-- KEYS[1]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:sched      ZSET  ids stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:retry      ZSET  ids stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:leases     ZSET  ids of the workers holding jobs (their held sets)
-- KEYS[5]  {ns:q}:done       ZSET  completed job ids
-- KEYS[6]  {ns:q}:dead       ZSET  dead job ids
-- KEYS[7]  {ns:q}:cancelled  ZSET  cancelled job ids
-- KEYS[8]  {ns:q}:paused     STRING present while paused
-- KEYS[9]  {ns:q}:counts     HASH  p:<minute> / f:<minute>
-- KEYS[10] {ns:q}:waiting    ZSET  jobs waiting for others
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  now
-- ARGV[3]  first minute of the history
--
-- Returns {paused, pending, scheduled, retry, active, completed, dead, cancelled,
--          oldest due run_at or nil, processed, failed, waiting, then minute, processed,
--          failed for each minute of the history}.
-- A waiting job that is due counts as pending, whatever it waited as.
local prefix, now = ARGV[1], ARGV[2]
local total, due, oldest = 0, 0, nil
for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local wkey = prefix .. 'w:' .. p
  total = total + redis.call('ZCARD', wkey)
  due = due + redis.call('ZCOUNT', wkey, '-inf', now)
  local first = redis.call('ZRANGEBYSCORE', wkey, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
  if first[2] and (oldest == nil or tonumber(first[2]) < tonumber(oldest)) then
    oldest = first[2]
  end
end
local scheduled = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local retry = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
local active = 0
for _, worker in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  active = active + redis.call('SCARD', prefix .. 'held:' .. worker)
end
local out = {
  redis.call('EXISTS', KEYS[8]),
  total - scheduled - retry,
  scheduled,
  retry,
  active,
  redis.call('ZCARD', KEYS[5]),
  redis.call('ZCARD', KEYS[6]),
  redis.call('ZCARD', KEYS[7]),
  oldest or false,
}
local processed, failed = 0, 0
local minutes, history = {}, {}
local since = tonumber(ARGV[3])
local counts = redis.call('HGETALL', KEYS[9])
for i = 1, #counts, 2 do
  local kind, minute, n = string.sub(counts[i], 1, 1), string.sub(counts[i], 3), tonumber(counts[i + 1]) or 0
  if kind == 'p' then processed = processed + n else failed = failed + n end
  if (tonumber(minute) or 0) >= since then
    if not history[minute] then
      history[minute] = {0, 0}
      minutes[#minutes + 1] = minute
    end
    if kind == 'p' then history[minute][1] = history[minute][1] + n
    else history[minute][2] = history[minute][2] + n end
  end
end
out[10] = processed
out[11] = failed
out[12] = redis.call('ZCARD', KEYS[10])
for _, minute in ipairs(minutes) do
  out[#out + 1] = minute
  out[#out + 1] = history[minute][1]
  out[#out + 1] = history[minute][2]
end
return out
