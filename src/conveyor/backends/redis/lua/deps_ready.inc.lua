-- Shared by deps_add and deps_release: wire.py's script_source pastes it over their include
-- line. Uses the including script's `prefix` ('{ns:q}:').
-- made_ready: a job whose dependencies all completed becomes ready as an enqueue makes it
-- (enqueue.lua): scheduled or pending by its run_at, in its priority's set; a job of a
-- limit's bucket (bucket_prefix, its queue's "{ns:q}:", not '') joins its queue's buckets and
-- ready set (same slot: a bucket's keys carry its queue's hash tag), and a pending one
-- pushes its queue's wake list. Returns the state it took.
local function made_ready(key, id, p, run_at, now, prios, sched, wake, bucket_prefix, bucket)
  local state = tonumber(run_at) > tonumber(now) and 'scheduled' or 'pending'
  redis.call('HSET', key, 's', state)
  redis.call('ZADD', prefix .. 'w:' .. p, run_at, id)
  redis.call('ZADD', prios, p, p)
  if bucket_prefix ~= '' then
    wake = bucket_prefix .. 'wake'
    redis.call('SADD', bucket_prefix .. 'buckets', bucket)
    local first = redis.call('ZSCORE', bucket_prefix .. 'ready', bucket)
    if not first or tonumber(first) > tonumber(run_at) then
      redis.call('ZADD', bucket_prefix .. 'ready', run_at, bucket)
    end
  end
  if state == 'scheduled' then
    redis.call('ZADD', sched, run_at, id)
  elseif redis.call('LPUSH', wake, '1') > 16 then
    redis.call('LTRIM', wake, 0, 15)
  end
  return state
end
