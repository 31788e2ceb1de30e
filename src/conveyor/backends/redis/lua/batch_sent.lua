-- batch_sent: a queue's moves up to a sequence number were taken in by their batches
-- (batch_apply.lua): they leave the queue's outbox.
--
-- KEYS[1]  {ns:q}:bmoves or {ns:q}:bout  ZSET  moves by seq (batch_read.lua)
-- ARGV[1]  the highest seq taken in
--
-- Returns how many left.
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
