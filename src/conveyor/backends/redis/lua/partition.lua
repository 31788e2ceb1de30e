-- partition: spread a queue over a number of partitions (hash slots), never fewer than it has.
--
-- KEYS[1]  {ns}:partitions  HASH  queue -> its number of partitions (absent: one)
-- ARGV[1]  queue
-- ARGV[2]  number of partitions asked for
--
-- Returns the number in force: the larger of the two, since jobs already in a partition
-- must stay served.
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 1
local asked = tonumber(ARGV[2])
if asked > current then
  redis.call('HSET', KEYS[1], ARGV[1], asked)
  return asked
end
return current
