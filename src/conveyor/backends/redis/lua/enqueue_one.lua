-- enqueue_one: store one new pending or scheduled job (single server: the id index lives in
-- another slot). enqueue.lua does the same for any batch; this one costs the server about
-- 40% less for the commonest call, a job enqueued alone.
--
-- KEYS[1]  {ns:q}:j:<id>  HASH  the job
-- KEYS[2]  {ns:q}:w:<p>   ZSET  waiting jobs of its priority, by run_at
-- KEYS[3]  {ns:q}:prios   ZSET  priorities that have waiting jobs
-- KEYS[4]  {ns:q}:wake    LIST  wake-up tokens for idle workers (BLPOP)
-- KEYS[5]  {ns}:where     HASH  job id -> queue (not for the queue 'default': readers look
--                               there first)
-- KEYS[6]  {ns:q}:sched   ZSET  ids stored as 'scheduled', by run_at
-- ARGV[1]  payload         ARGV[2] priority      ARGV[3] state ('pending' or 'scheduled')
-- ARGV[4]  run_at          ARGV[5] meta: "priority|max_attempts|timeout|created_at"
-- ARGV[6]  id              ARGV[7] queue
-- ARGV[8]  "1" if the job is due now (it then pushes a wake-up token)
-- ARGV[9]  most wake-up tokens to keep
--
-- Returns 1, or 0 when the job exists already (a call re-sent after a lost reply).
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'p', ARGV[1], 'm', ARGV[5], 's', ARGV[3], 'ra', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[2])
if ARGV[7] ~= 'default' then redis.call('HSET', KEYS[5], ARGV[6], ARGV[7]) end
if ARGV[3] == 'scheduled' then
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[6])
end
-- The list is read first: while no worker waits, tokens pile up to the cap, and one LLEN
-- costs less than an LPUSH and the LTRIM that would follow it.
if ARGV[8] == '1' and redis.call('LLEN', KEYS[4]) < tonumber(ARGV[9]) then
  redis.call('LPUSH', KEYS[4], '1')
end
return 1
