-- batch_prune: batches that finished before a time go away (housekeeping, result_ttl after
-- they finished): their hash and their list of jobs, oldest first, at most a page per call,
-- read from the finished index: the cost does not depend on how many batches are stored. A
-- batch whose callback is still to be enqueued waits for the next call; one re-opened since
-- (a retry) leaves the index until it finishes again.
--
-- KEYS[1]  {ns:b}:fin   ZSET  finished batches by when they finished (batch_decide.inc.lua)
-- KEYS[2]  {ns:b}:fire  SET   "batch|kind" of callbacks fired, not yet enqueued
-- ARGV[1]  prefix "{ns:b}:"
-- ARGV[2]  delete batches that finished before this time
-- ARGV[3]  at most this many
--
-- Returns how many were deleted.
local prefix = ARGV[1]
local gone = 0
for _, batch in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))) do
  local h = prefix .. 'h:' .. batch
  local v = redis.call('HMGET', h, 't', 'c', 'd', 'x', 'u')
  local total = tonumber(v[1])
  if not total then
    redis.call('ZREM', KEYS[1], batch)
  elseif total <= 0 or (tonumber(v[5]) or 0) > 0
      or tonumber(v[2]) + tonumber(v[3]) + tonumber(v[4]) < total then
    redis.call('ZREM', KEYS[1], batch)  -- open again: back in when it finishes again
  elseif redis.call('SISMEMBER', KEYS[2], batch .. '|success') == 0
      and redis.call('SISMEMBER', KEYS[2], batch .. '|complete') == 0
      and redis.call('SISMEMBER', KEYS[2], batch .. '|death') == 0 then
    -- UNLINK: a list of 100,000 jobs is freed off the main thread.
    redis.call('UNLINK', h, prefix .. 'ids:' .. batch)
    redis.call('ZREM', KEYS[1], batch)
    gone = gone + 1
  end
end
return gone
