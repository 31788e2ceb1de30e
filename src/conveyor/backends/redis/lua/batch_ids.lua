-- batch_ids: list the ids of jobs an open intake is about to store, and count them in the
-- batch, in one step: the batch never counts a job that is not listed (housekeeping repairs
-- an intake whose creator died from this list, batches.py). Listed before any of them is
-- stored, so none can end uncounted. Safe to re-send: an id listed already counts no twice.
--
-- KEYS[1]  {ns:b}:h:<id>    HASH  the batch
-- KEYS[2]  {ns:b}:ids:<id>  ZSET  its jobs, members "<id><queue>" at score 0 (pages, by id)
-- KEYS[3]  {ns:b}:intake    ZSET  intakes not yet sealed (batch_create.lua)
-- ARGV[1]  the intake's member
-- ARGV[2…] members "<id><queue>"
--
-- Returns how many were counted (0 when the intake is not open: its batch_create or
-- batch_add refused it).
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
local args = {}
for i = 2, #ARGV do
  args[#args + 1] = 0
  args[#args + 1] = ARGV[i]
end
local added = redis.call('ZADD', KEYS[2], unpack(args))
if added > 0 then redis.call('HINCRBY', KEYS[1], 't', added) end
return added
