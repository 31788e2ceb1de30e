-- hint_drop: Cluster. Forget the hints of queues a fetch found without waiting jobs, each
-- only if its hint is still the one the fetch saw: a write since then left a new token, and
-- its hint stays (see store.py, _fetch_slots).
--
-- KEYS[1]  {ns}:hints            HASH  queue -> token of the last write that made a job wait
-- ARGV     queue, token, queue, token, ...
local dropped = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    dropped = dropped + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return dropped
