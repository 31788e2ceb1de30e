-- Shared by the scripts that end a job (complete, fail, act, recover, sweep): wire.py's
-- script_source pastes it over a script's include line for it. Uses the
-- including script's `prefix` ('{ns:q}:').
-- A job of a batch that ends, or comes back from an end, adds the move to the queue's outbox
-- ("seq|batch|from|to", by a sequence number), for its batch to take in (batches.py); a queue
-- without batch jobs pays one EXISTS per call.
local batched = redis.call('EXISTS', prefix .. 'bj') == 1
local forwarded = 0
local function batch_moved(id, from, to)
  local batch = batched and redis.call('HGET', prefix .. 'bj', id)
  if batch then
    local seq = redis.call('INCR', prefix .. 'bseq')
    redis.call('ZADD', prefix .. 'bout', seq, seq .. '|' .. batch .. '|' .. from .. '|' .. to)
    forwarded = forwarded + 1
  end
end
