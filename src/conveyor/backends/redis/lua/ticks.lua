-- ticks: offer periodic ticks of schedules whose jobs go to one queue; store the job of each
-- tick later than its schedule's recorded one. The marker and the job share the queue's slot,
-- so the decision and the job's writes are one script, on Cluster too.
--
-- KEYS[1]  {ns:q}:periodic  HASH  schedule name -> "last_at|next_at|job_id|enqueued_at"
-- KEYS[2]  {ns:q}:prios     ZSET  priorities that have waiting jobs (member = score = priority)
-- KEYS[3]  {ns:q}:wake      LIST  wake-up tokens for idle workers (BLPOP)
-- KEYS[4]  {ns}:where       HASH  job id -> queue      } only on a single server, where one
-- KEYS[5]  {ns}:queues      SET   every queue ever used } script may span slots; on Cluster
--                                                        the caller writes these itself.
-- ARGV[1]  prefix of the queue's keys, "{ns:q}:"
-- ARGV[2]  the queue's name
-- ARGV[3]  now (kept as the schedule's enqueued_at)
-- ARGV[4]  most wake-up tokens to keep
-- ARGV[5…] groups of 9, one per tick: schedule name, tick time, next tick time, "1" for a
--          catch-up (taken only over an older recorded tick, never where none is recorded),
--          job id, payload, priority, run_at, meta (the job hash's field m). A tick's job is
--          always pending.
--
-- Returns one flag per tick: 1 when its job is stored (by this call, or by an earlier run of
-- this same call whose reply was lost: the recorded job is this one), else 0.
local prefix, queue, now = ARGV[1], ARGV[2], ARGV[3]
local indexed = KEYS[4] ~= nil and queue ~= 'default'
local flags, stored = {}, 0
for i = 5, #ARGV, 9 do
  local name, at, id = ARGV[i], ARGV[i + 1], ARGV[i + 4]
  local recorded = redis.call('HGET', KEYS[1], name)
  local take, last_job = false, nil
  if recorded then
    local last
    last, last_job = string.match(recorded, '^([^|]*)|[^|]*|([^|]*)')
    last = tonumber(last)
    -- A record that does not parse was not written by conveyor: the tick replaces it.
    take = last == nil or last < tonumber(at)
  else
    take = ARGV[i + 3] ~= '1'
  end
  if take then
    local p, run_at = ARGV[i + 6], ARGV[i + 7]
    redis.call('HSET', KEYS[1], name, at .. '|' .. ARGV[i + 2] .. '|' .. id .. '|' .. now)
    redis.call('HSET', prefix .. 'j:' .. id, 'p', ARGV[i + 5], 'm', ARGV[i + 8], 's', 'pending', 'ra', run_at)
    redis.call('ZADD', prefix .. 'w:' .. p, run_at, id)
    redis.call('ZADD', KEYS[2], p, p)
    if indexed then redis.call('HSET', KEYS[4], id, queue) end
    stored = stored + 1
    flags[#flags + 1] = 1
  elseif last_job == id then
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
if stored > 0 then
  if KEYS[5] then redis.call('SADD', KEYS[5], queue) end
  local cap = tonumber(ARGV[4])
  local tokens = {}
  for t = 1, math.min(stored, cap) do tokens[t] = '1' end
  if redis.call('LPUSH', KEYS[3], unpack(tokens)) > cap then
    redis.call('LTRIM', KEYS[3], 0, cap - 1)
  end
end
return flags
