-- batch_read: the first moves of batch jobs in one queue's outbox (Cluster: batch_apply.lua
-- takes them in, in the batch slot).
--
-- KEYS[1]  {ns:q}:bmoves (or bout, one job a move, of older versions)  ZSET  moves "seq|batch|from|to|n" of the queue's batch jobs into or out
--                             of an end, by seq ({ns:q}:bseq), written by the script that
--                             moved the job
-- ARGV[1]  at most this many moves
--
-- Returns member, seq, member, seq… oldest first.
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
