-- batch_read: the jobs of one queue whose batch has not yet seen their latest state: for
-- each, its batch, its state now and the sequence number of its latest move (read together:
-- the script that moved the job wrote both).
--
-- KEYS[1]  {ns:q}:bj    HASH  job id -> batch id, for the queue's jobs that are in a batch
-- KEYS[2]  {ns:q}:bout  ZSET  jobs whose state moved into or out of an end, by the sequence
--                             number of that move ({ns:q}:bseq)
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  at most this many jobs
--
-- Returns 4 values per job: id, batch id ("" if unknown), state ("" if the job is gone), seq.
local out = {}
local moved = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for i = 1, #moved, 2 do
  local id = moved[i]
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[1], id) or ''
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'j:' .. id, 's') or ''
  out[#out + 1] = moved[i + 1]
end
return out
