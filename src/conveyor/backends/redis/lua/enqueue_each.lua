-- enqueue_each: store jobs of one queue that carry a unique key or an expiry, each decided
-- on its own: a job whose unique key a live job of the queue holds is not stored.
--
-- KEYS[1]  {ns:q}:prios    ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:sched    ZSET  ids stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:wake     LIST  wake-up tokens for idle workers (BLPOP)
-- KEYS[4]  {ns:q}:expires  ZSET  ids of jobs with an expiry, by it (housekeeping sweeps it)
-- KEYS[5]  {ns}:where      HASH  job id -> queue      } only on a single server (as in
-- KEYS[6]  {ns}:queues     SET   every queue ever used } enqueue.lua); on Cluster the
--                                                        caller writes these first
-- ARGV[1]  prefix of the queue's keys, "{ns:q}:"
-- ARGV[2]  most waiting jobs the queue may hold ("" = no limit)
-- ARGV[3]  now
-- ARGV[4]  most wake-up tokens to keep
-- ARGV[5]  the queue's name
-- ARGV[6]  "1" to add the queue to KEYS[6]
-- ARGV[7…] 9 per job: id, payload, priority, state ('pending' or 'scheduled'), run_at,
--          meta (field m), expires_at ("" = none), unique key ("" = none), milliseconds the
--          key is held at most
--
-- A unique key is the string {ns:q}:u:<key>, holding the id of the job that holds it, with
-- the key's time to live: it lives in the queue's slot, so this works on Cluster. It is not
-- deleted when its job ends (that would cost every complete a read of the job): a holder
-- that is no longer waiting or running, or is gone, holds nothing, and the next job takes
-- the key over.
--
-- Returns one value per job: "" when stored, else the id of the live job holding its key.
-- A job that exists already (a call re-sent after a lost reply) counts as stored.
local prefix, queue, now = ARGV[1], ARGV[5], tonumber(ARGV[3])
local indexed = KEYS[5] ~= nil and queue ~= 'default'
local LIVE = {scheduled = true, pending = true, retry = true, active = true}
local out = {}
local due = 0

local function waiting()
  local n = 0
  for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    n = n + redis.call('ZCARD', prefix .. 'w:' .. p)
  end
  return n
end

for i = 7, #ARGV, 9 do
  local id, payload, p, state, run_at, meta = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local expires, key, ttl = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local job = prefix .. 'j:' .. id
  local holder = nil
  if redis.call('EXISTS', job) == 0 then
    if key ~= '' then
      local lock = prefix .. 'u:' .. key
      local current = redis.call('GET', lock)
      if current and current ~= id and LIVE[redis.call('HGET', prefix .. 'j:' .. current, 's') or ''] then
        holder = current
      end
    end
    if holder == nil and ARGV[2] ~= '' and waiting() + 1 > tonumber(ARGV[2]) then
      return redis.error_reply('QUEUEFULL ' .. waiting())
    end
    if holder == nil then
      if key ~= '' then redis.call('SET', prefix .. 'u:' .. key, id, 'PX', ttl) end
      redis.call('HSET', job, 'p', payload, 'm', meta, 's', state, 'ra', run_at)
      if key ~= '' then redis.call('HSET', job, 'u', key) end
      if expires ~= '' then
        redis.call('HSET', job, 'x', expires)
        redis.call('ZADD', KEYS[4], expires, id)
      end
      redis.call('ZADD', prefix .. 'w:' .. p, run_at, id)
      redis.call('ZADD', KEYS[1], p, p)
      if state == 'scheduled' then redis.call('ZADD', KEYS[2], run_at, id) end
      if indexed then redis.call('HSET', KEYS[5], id, queue) end
      if tonumber(run_at) <= now then due = due + 1 end
    end
  end
  out[#out + 1] = holder or ''
end
if KEYS[6] and ARGV[6] == '1' then redis.call('SADD', KEYS[6], queue) end
if due > 0 then
  local cap = tonumber(ARGV[4])
  local tokens = {}
  for t = 1, math.min(due, cap) do tokens[t] = '1' end
  if redis.call('LPUSH', KEYS[3], unpack(tokens)) > cap then
    redis.call('LTRIM', KEYS[3], 0, cap - 1)
  end
end
return out
