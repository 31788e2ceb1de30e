-- unschedule: delete the state of abandoned schedules (no longer in the code) of one queue.
--
-- KEYS[1]  {ns:q}:periodic  HASH  schedule name -> "last_at|next_at|job_id|enqueued_at"
-- ARGV[1]  abandoned_before: a schedule goes only if its recorded next tick is before this
-- ARGV[2…] names of the schedules to delete; each is checked again here, so one that was
--          enqueued since the caller read it (its next tick moved on) stays.
--
-- Returns how many went.
local before, gone = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  local recorded = redis.call('HGET', KEYS[1], ARGV[i])
  if recorded then
    local next_at = tonumber(string.match(recorded, '^[^|]*|([^|]*)'))
    if next_at == nil or next_at < before then
      gone = gone + redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
end
return gone
