-- due: how many jobs a fetch of one queue would give now, up to a limit, and what a fetch
-- needs to know of a queue that has none (reads only). On Cluster a worker of many queues
-- asks the queues its hints name (see store.py, _fetch_slots), then claims only from those
-- that have some.
--
-- KEYS[1]  {ns:q}:prios          ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:paused         STRING present while the queue is paused
-- KEYS[3]  {ns:q}:claim:<worker> LIST  token of the worker's last claim, then its ids
-- KEYS[4]  {ns:q}:hint           STRING token of the last hinted write to the queue
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  now
-- ARGV[3]  limit
-- ARGV[4]  the token of the fetch asking
--
-- Returns {count, next, hint}: next is the earliest run_at of the queue's waiting jobs when
-- none is due ('' when it has none waiting, 'paused' when it is paused), hint the token the
-- last write that made a job wait here left (false when none did).
--
-- A claim of this very token (the fetch is being sent again after a lost reply) counts as
-- its jobs, so the retry asks for them again and gets them back instead of orphaning them.
local hint = redis.call('GET', KEYS[4])
if redis.call('LINDEX', KEYS[3], 0) == ARGV[4] then
  return {redis.call('LLEN', KEYS[3]) - 1, '', hint}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, 'paused', hint}
end
local limit, found, first = tonumber(ARGV[3]), 0, nil
for _, p in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  if found >= limit then break end
  local n = redis.call('ZCOUNT', ARGV[1] .. 'w:' .. p, '-inf', ARGV[2])
  found = found + n
  if n == 0 then
    local head = redis.call('ZRANGE', ARGV[1] .. 'w:' .. p, 0, 0, 'WITHSCORES')[2]
    if head and (first == nil or tonumber(head) < tonumber(first)) then first = head end
  end
end
return {math.min(found, limit), found == 0 and (first or '') or '', hint}
