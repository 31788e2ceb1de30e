-- batch_apply: take in the latest states of batch jobs, move the batches' counters, and
-- decide their callbacks, in one step in the slot {ns:b}: exactly one call sees a callback
-- due and not yet fired, and marks it fired.
--
-- KEYS[1]  {ns:b}:fire  SET  "batch id|kind" of callbacks fired whose job is not yet
--                            enqueued in its queue (the caller enqueues it, by its fixed id,
--                            then removes the entry; housekeeping finishes what a crash left)
-- ARGV[1]  prefix "{ns:b}:"
-- ARGV[2]  now
-- ARGV[3]  "e": the jobs follow, 4 per job: batch id, job id, state ("" = the job is gone),
--          seq (read by batch_read.lua in their queues' slots: Cluster);
--          "q": queue prefixes follow, then nothing else: each queue's outbox is read here,
--          taken in and emptied of what was taken in, in this one script (a single server,
--          where one script may touch every slot: one round trip instead of three)
-- ARGV[4…] as ARGV[3] says
--
-- Per batch, {ns:b}:m:<batch> holds "state|seq" of each job it heard of: a state is taken in
-- only with a newer seq than the one held, so a repeated or late forward changes nothing.
-- A job gone before it ended counts as cancelled. Returns the fire entries added.
local prefix, now = ARGV[1], ARGV[2]
local FIELD = {completed = 'c', dead = 'd', cancelled = 'x'}
local touched, order = {}, {}
local entries = {}
if ARGV[3] == 'q' then
  -- batch_read.lua and batch_sent.lua, inline: the move and its removal from the outbox are
  -- one step here, so no sequence number need be compared.
  for q = 4, #ARGV do
    local qp = ARGV[q]
    local moved = redis.call('ZRANGE', qp .. 'bout', 0, 999, 'WITHSCORES')
    for i = 1, #moved, 2 do
      local id = moved[i]
      entries[#entries + 1] = redis.call('HGET', qp .. 'bj', id) or ''
      entries[#entries + 1] = id
      entries[#entries + 1] = redis.call('HGET', qp .. 'j:' .. id, 's') or ''
      entries[#entries + 1] = moved[i + 1]
      redis.call('ZREM', qp .. 'bout', id)
      if entries[#entries - 1] == '' then redis.call('HDEL', qp .. 'bj', id) end
    end
  end
else
  for i = 4, #ARGV do entries[#entries + 1] = ARGV[i] end
end
for i = 1, #entries, 4 do
  local batch, id, state, seq = entries[i], entries[i + 1], entries[i + 2], tonumber(entries[i + 3])
  local h = prefix .. 'h:' .. batch
  if batch ~= '' and redis.call('EXISTS', h) == 1 then
    local m = prefix .. 'm:' .. batch
    local held = redis.call('HGET', m, id)
    local old, old_seq = nil, -1
    if held then
      local s, n = string.match(held, '^(.*)|([^|]*)$')
      old, old_seq = s, tonumber(n) or -1
    end
    if seq > old_seq then
      if state == '' then state = (old and FIELD[old]) and old or 'cancelled' end
      if old ~= state then
        if old and FIELD[old] then redis.call('HINCRBY', h, FIELD[old], -1) end
        if FIELD[state] then redis.call('HINCRBY', h, FIELD[state], 1) end
      end
      redis.call('HSET', m, id, state .. '|' .. seq)
      if not touched[batch] then
        touched[batch] = true
        order[#order + 1] = batch
      end
    end
  end
end

local fired = {}
for _, batch in ipairs(order) do
  local h = prefix .. 'h:' .. batch
  local v = redis.call('HMGET', h, 't', 'c', 'd', 'x', 'pa', 'cb:success', 'cf:success',
    'cb:complete', 'cf:complete', 'cb:death', 'cf:death')
  local total, c, d, x = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
  local due = {
    success = v[6] and not v[7] and c >= total,
    complete = v[8] and not v[9] and c + d + x >= total,
    death = v[10] and not v[11] and d > 0,
  }
  for _, kind in ipairs({'death', 'complete', 'success'}) do
    if due[kind] then
      redis.call('HSET', h, 'cf:' .. kind, now)
      local entry = batch .. '|' .. kind
      redis.call('SADD', KEYS[1], entry)
      fired[#fired + 1] = entry
      -- A nested batch's on_success and on_death join its parent as they fire (its
      -- on_complete was counted there when it was made).
      if kind ~= 'complete' and v[5] and v[5] ~= '' then
        redis.call('HINCRBY', prefix .. 'h:' .. v[5], 't', 1)
      end
    end
  end
end
return fired
