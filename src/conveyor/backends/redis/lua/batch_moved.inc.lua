-- Shared by the scripts that end a job (complete, fail, act, recover, sweep): wire.py's
-- script_source pastes it over a script's include line for it. Uses the including
-- script's `prefix` ('{ns:q}:').
-- A job of a batch that ends, or comes back from an end, adds the move to the queue's outbox
-- ("seq|batch|from|to|n": n jobs of the batch moved, by a sequence number), for its batch to
-- take in (batches.py); a queue without batch jobs pays one EXISTS per call.
-- The outbox is {ns:q}:bmoves, not the {ns:q}:bout of versions whose moves were one job each
-- ("seq|batch|from|to"): their batch_apply.lua would pass over a counted move and still raise
-- its mark, so a worker of such a version, running beside this one in a rolling upgrade, must
-- never meet one. This version reads both outboxes, each with its own mark.
--
-- batch_moved(id, from, to) writes the move at once. The acknowledgements (complete, fail),
-- which end many jobs of one batch in one call, use batch_moved_later instead and call
-- batch_flush() once before they return: one outbox entry per (batch, from, to) of the call,
-- whatever its number of jobs, so neither the acknowledgement nor batch_apply.lua pays a
-- command per job for it (batch_prefetch reads the jobs' batches with one HMGET as well).
-- The entry is written in the same script as the jobs' ends: atomic with them as before.
local batched = redis.call('EXISTS', prefix .. 'bj') == 1
local forwarded = 0
local known = {}  -- id -> batch, or false: read by batch_prefetch
local later, later_order = {}, {}  -- "batch|from|to" -> jobs, in order of first move

local function batch_prefetch(ids)
  if batched and #ids > 0 then
    local v = redis.call('HMGET', prefix .. 'bj', unpack(ids))
    for k, id in ipairs(ids) do known[id] = v[k] or false end
  end
end

local function batch_of(id)
  local batch = known[id]
  if batch == nil then batch = batched and redis.call('HGET', prefix .. 'bj', id) end
  return batch
end

local function batch_append(move, n)
  local seq = redis.call('INCR', prefix .. 'bseq')
  redis.call('ZADD', prefix .. 'bmoves', seq, seq .. '|' .. move .. '|' .. n)
  forwarded = forwarded + 1
end

local function batch_moved(id, from, to)
  local batch = batch_of(id)
  if batch then batch_append(batch .. '|' .. from .. '|' .. to, 1) end
end

local function batch_moved_later(id, from, to)
  local batch = batch_of(id)
  if batch then
    local move = batch .. '|' .. from .. '|' .. to
    local n = later[move]
    if n then
      later[move] = n + 1
    else
      later[move] = 1
      later_order[#later_order + 1] = move
    end
  end
end

local function batch_flush()
  for _, move in ipairs(later_order) do batch_append(move, later[move]) end
  later, later_order = {}, {}
end
