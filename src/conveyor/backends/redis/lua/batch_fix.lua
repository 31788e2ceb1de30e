-- batch_fix: jobs an intake listed and never stored (its creator died, or the store refused
-- them: batches.py's repair checked each in its queue) leave the batch's list and its count,
-- in one step. Safe to run twice: only an id still listed counts down.
--
-- KEYS[1]  {ns:b}:h:<id>    HASH  the batch
-- KEYS[2]  {ns:b}:ids:<id>  ZSET  its jobs, members "<id><queue>"
-- ARGV[…]  the members never stored
--
-- Returns how many left the count. (ZREM first: on a full store, noeviction, a script whose
-- first write frees memory may write on.)
local gone = redis.call('ZREM', KEYS[2], unpack(ARGV))
if gone > 0 then redis.call('HINCRBY', KEYS[1], 't', -gone) end
return gone
