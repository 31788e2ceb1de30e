-- change: reschedule a waiting job (scheduled, pending or retry), change its priority, or
-- move it to another queue (a single server only: the other queue's keys are in another
-- slot, which is why the caller refuses a move on Cluster).
--
-- KEYS[1]  {ns:q}:prios    ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:sched    ZSET  ids stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:retry    ZSET  ids stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:wake     LIST  wake-up tokens for idle workers
-- KEYS[5]  {ns:q}:expires  ZSET  ids of jobs with an expiry, by it
-- KEYS[6]  {ns}:where      HASH  job id -> queue      } passed only off Cluster, for a move
-- KEYS[7]  {ns}:queues     SET   every queue ever used }
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  job id
-- ARGV[3]  now
-- ARGV[4]  new run_at ("" = keep)
-- ARGV[5]  new priority ("" = keep)
-- ARGV[6]  the queue to move to ("" = stay), ARGV[7] its prefix, ARGV[8] the payload
--          signed for it
-- ARGV[9]  most wake-up tokens to keep
--
-- Returns 1 if the job changed, 0 if it is not waiting (or not there).
local prefix, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local key = prefix .. 'j:' .. id
local v = redis.call('HMGET', key, 's', 'ra', 'm', 'x')
local state, run_at, meta = v[1], v[2] or '0', v[3] or '0|1||0'
if state ~= 'scheduled' and state ~= 'pending' and state ~= 'retry' then return 0 end
local p = string.match(meta, '^(%-?%d+)|') or '0'

-- Out of the waiting sets it is in now.
local wkey = prefix .. 'w:' .. p
redis.call('ZREM', wkey, id)
if redis.call('ZCARD', wkey) == 0 then redis.call('ZREM', KEYS[1], p) end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)

if ARGV[4] ~= '' then
  run_at = ARGV[4]
  if tonumber(run_at) <= now then
    state = 'pending'
  elseif state ~= 'retry' then
    state = 'scheduled'
  end
end
if ARGV[5] ~= '' then
  meta = ARGV[5] .. (string.match(meta, '^%-?%d+(|.*)$') or '|1||0')
  p = ARGV[5]
end

local dst = prefix
if ARGV[6] ~= '' then
  dst = ARGV[7]
  local moved = dst .. 'j:' .. id
  redis.call('RENAME', key, moved)
  key = moved
  redis.call('HSET', key, 'p', ARGV[8])
  if v[4] then
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZADD', dst .. 'expires', v[4], id)
  end
  if ARGV[6] == 'default' then
    redis.call('HDEL', KEYS[6], id)
  else
    redis.call('HSET', KEYS[6], id, ARGV[6])
  end
  redis.call('SADD', KEYS[7], ARGV[6])
end

redis.call('HSET', key, 's', state, 'ra', run_at, 'm', meta)
redis.call('ZADD', dst .. 'w:' .. p, run_at, id)
redis.call('ZADD', dst .. 'prios', p, p)
if state == 'scheduled' then
  redis.call('ZADD', dst .. 'sched', run_at, id)
elseif state == 'retry' then
  redis.call('ZADD', dst .. 'retry', run_at, id)
end
if tonumber(run_at) <= now then
  local wake = dst .. 'wake'
  if redis.call('LPUSH', wake, '1') > tonumber(ARGV[9]) then redis.call('LTRIM', wake, 0, tonumber(ARGV[9]) - 1) end
end
return 1
