-- batch_seal: an intake's jobs are stored (or, after a repair, those never stored are no
-- longer counted): it leaves the intake set, and once the batch has no intake left its
-- callbacks are decided (batch_decide.inc.lua), moves taken in meanwhile included. Safe to
-- run twice: the intake counts down once.
--
-- KEYS[1]  {ns:b}:h:<id>    HASH  the batch
-- KEYS[2]  {ns:b}:intake    ZSET  intakes not yet sealed (batch_create.lua)
-- KEYS[3]  {ns:b}:fire      SET   "batch|kind" of callbacks fired, not yet enqueued
-- KEYS[4]  {ns:b}:fin       ZSET  finished batches by when they finished
-- KEYS[5]  {ns:b}:ids:<id>  ZSET  its jobs
-- ARGV[1]  prefix "{ns:b}:"
-- ARGV[2]  the batch id
-- ARGV[3]  the intake's member
-- ARGV[4]  now
-- ARGV[5]  "1": the batch's creation was repaired: if it stored no job at all, the batch is
--          deleted (no callback fires) and its parent counts its on_complete no more
--
-- Returns the fire entries added, or {"dropped"} when the batch was deleted.
local prefix, batch, now = ARGV[1], ARGV[2], ARGV[4]
local fire_key, fin_key = KEYS[3], KEYS[4]
--#include batch_decide
if redis.call('ZREM', KEYS[2], ARGV[3]) == 1 then redis.call('HINCRBY', KEYS[1], 'u', -1) end
local fired = {}
if ARGV[5] == '1' then
  local v = redis.call('HMGET', KEYS[1], 't', 'u', 'pa')
  if v[1] and tonumber(v[1]) == 0 and (tonumber(v[2]) or 0) == 0 then
    redis.call('UNLINK', KEYS[1], KEYS[5])
    redis.call('ZREM', fin_key, batch)
    if v[3] and v[3] ~= '' and redis.call('EXISTS', prefix .. 'h:' .. v[3]) == 1 then
      redis.call('HINCRBY', prefix .. 'h:' .. v[3], 't', -1)
      decide(v[3], fired)
    end
    fired[#fired + 1] = 'dropped'
    return fired
  end
end
decide(batch, fired)
return fired
