-- batch_sent: jobs of one queue whose state their batch has taken in (batch_apply.lua):
-- each leaves the queue's outbox, unless it moved again meanwhile (a new sequence number:
-- then it is forwarded again). A job that is gone leaves the batch index too.
--
-- KEYS[1]  {ns:q}:bj    HASH  job id -> batch id
-- KEYS[2]  {ns:q}:bout  ZSET  jobs to forward, by sequence number of their latest move
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2…] 2 per job: id, the sequence number forwarded
--
-- Returns how many left the outbox.
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local seq = redis.call('ZSCORE', KEYS[2], id)
  if seq and tonumber(seq) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[2], id)
    if redis.call('EXISTS', ARGV[1] .. 'j:' .. id) == 0 then redis.call('HDEL', KEYS[1], id) end
    n = n + 1
  end
end
return n
