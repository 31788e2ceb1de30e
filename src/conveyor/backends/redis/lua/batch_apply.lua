-- batch_apply: take in moves of batch jobs into or out of an end (written to their queues'
-- outboxes by the scripts that moved them), move the batches' counters, and decide their
-- callbacks, in one step in the slot {ns:b}: exactly one call sees a callback due and not yet
-- fired, and marks it fired.
--
-- KEYS[1]  {ns:b}:fire  SET   "batch id|kind" of callbacks fired whose job is not yet
--                             enqueued in its queue (the caller enqueues it, by its fixed id,
--                             then removes the entry; housekeeping finishes what a crash left)
-- KEYS[2]  {ns:b}:hw    HASH  queue prefix -> the highest seq of its outbox taken in
-- KEYS[3]  {ns:b}:fin   ZSET  finished batches by when they finished (batch_prune.lua)
-- ARGV[1]  prefix "{ns:b}:"
-- ARGV[2]  now
-- ARGV[3]  "e": moves read by batch_read.lua follow (Cluster), per outbox: its mark's name
--          (the queue's prefix, "m" added for {ns:q}:bmoves), a count n, then n × (member, seq);
--          "q": queue prefixes follow: each queue's outboxes ({ns:q}:bmoves, and {ns:q}:bout
--          of older versions) are read and emptied here, in this one script (a single
--          server, where one script may touch every slot)
-- ARGV[4…] as ARGV[3] says
--
-- A move is taken in only if its seq is above the queue's mark in KEYS[2], so a forward
-- repeated after a crash, or two forwards at once, change nothing twice. The decision is
-- batch_decide.inc.lua's. Returns the fire entries added.
local prefix, now = ARGV[1], ARGV[2]
local fire_key, fin_key = KEYS[1], KEYS[3]
--#include batch_decide

local FIELD = {completed = 'c', dead = 'd', cancelled = 'x'}
local delta, order = {}, {}

local function take(qp, moved)  -- moved: member, seq, member, seq…
  local mark = tonumber(redis.call('HGET', KEYS[2], qp) or '0')
  local high = mark
  for i = 1, #moved, 2 do
    local seq = tonumber(moved[i + 1])
    if seq > mark then
      local batch, from, to, n = string.match(moved[i], '^[^|]*|([^|]*)|([^|]*)|([^|]*)|(%d+)$')
      if not batch then  -- written before moves carried their number of jobs: one
        batch, from, to = string.match(moved[i], '^[^|]*|([^|]*)|([^|]*)|([^|]*)$')
      end
      if batch then
        n = tonumber(n) or 1
        local d = delta[batch]
        if not d then
          d = {c = 0, d = 0, x = 0}
          delta[batch] = d
          order[#order + 1] = batch
        end
        if FIELD[from] then d[FIELD[from]] = d[FIELD[from]] - n end
        if FIELD[to] then d[FIELD[to]] = d[FIELD[to]] + n end
      end
      if seq > high then high = seq end
    end
  end
  if high > mark then redis.call('HSET', KEYS[2], qp, high) end
  return high
end

if ARGV[3] == 'q' then
  for q = 4, #ARGV do
    -- The outbox of counted moves (mark "<prefix>m") and the one-job outbox of older
    -- versions (mark "<prefix>"): see batch_moved.inc.lua.
    for _, box in ipairs({{'bmoves', 'm'}, {'bout', ''}}) do
      local out = ARGV[q] .. box[1]
      local moved = redis.call('ZRANGE', out, 0, 999, 'WITHSCORES')
      if #moved > 0 then
        redis.call('ZREMRANGEBYSCORE', out, '-inf', take(ARGV[q] .. box[2], moved))
      end
    end
  end
else
  local i = 4
  while i <= #ARGV do
    local qp, n = ARGV[i], tonumber(ARGV[i + 1])
    local moved = {}
    for k = 1, 2 * n do moved[k] = ARGV[i + 1 + k] end
    take(qp, moved)
    i = i + 2 + 2 * n
  end
end

local fired = {}
for _, batch in ipairs(order) do
  local h = prefix .. 'h:' .. batch
  if redis.call('EXISTS', h) == 1 then
    local d = delta[batch]
    if d.c ~= 0 then redis.call('HINCRBY', h, 'c', d.c) end
    if d.d ~= 0 then redis.call('HINCRBY', h, 'd', d.d) end
    if d.x ~= 0 then redis.call('HINCRBY', h, 'x', d.x) end
    decide(batch, fired)
  end
end
return fired
