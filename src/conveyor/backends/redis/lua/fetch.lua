-- fetch: claim up to a limit of due jobs, for one worker with a lease, from one queue or from
-- several in order (a later queue only once the earlier ones gave what they had): one call
-- whatever the number of queues, where a worker of 200 queues used to send one per queue.
--
-- KEYS[1]  {ns:q}:prios          ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:leases         ZSET  worker id by the earliest lease of the jobs it holds
-- KEYS[3]  {ns:q}:sched          ZSET  ids stored as 'scheduled'
-- KEYS[4]  {ns:q}:retry          ZSET  ids stored as 'retry'
-- KEYS[5]  {ns:q}:paused         STRING present while the queue is paused
-- KEYS[6]  {ns:q}:held:<worker>  SET   ids this worker holds (the heartbeat extends them)
-- KEYS[7]  {ns:q}:claim:<worker> LIST  token of the worker's last claim, then its ids
-- ARGV[1]  prefix "{ns:q}:" of the first queue
-- ARGV[2]  limit
-- ARGV[3]  worker id
-- ARGV[4]  lease expiry (now + lease)
-- ARGV[5]  now
-- ARGV[6]  token unique to this call
-- ARGV[7]  milliseconds to remember the claim
-- ARGV[8]  "" or the caller's clock minus the server's, in seconds: then ARGV[4] is the
--          lease in seconds, and now is the server's TIME read in the caller's clock. A worker
--          sends such a fetch right behind its BLPOP, and the server runs it whenever the
--          BLPOP returns: the jobs that woke it are claimed without another round-trip.
--          Such a call returns that now first, then the jobs.
-- ARGV[9…] the prefix of each further queue, whose seven keys the script builds from it as
--          it builds a job's (off Cluster only: on Cluster a call stays in one slot, one queue;
--          two hundred queues' keys as arguments cost the server more than the rest); or
--          ARGV[9] "?" (Cluster): one queue, and the reply ends with what is left in it,
--          its due jobs counted up to ARGV[10]
--
-- Returns, for each queue that gave jobs: its position (1 = the first), how many it gave,
-- then 7 values per job: id, p m ra a e tb of its hash (nil where absent), in claim order:
-- priority DESC, then run_at, then id (the member order of equal scores). The caller knows
-- the rest: state 'active', locked_by, lease_until, started_at. The same token again
-- (redis-py re-sends a call whose reply was lost) returns the same jobs instead of claiming
-- more, so a claim is never orphaned by a retry.
--
-- With ARGV[9] "?" the reply ends with three values more, what a count (due.lua) of the
-- queue after the claim would say, so the caller knows it without counting it again: its
-- due jobs up to ARGV[10], the earliest run_at of its waiting jobs when none is due (''
-- when none waits, 'paused'), and its hint stamp ({ns:q}:hint, false when none).
local worker, lease_until, now = ARGV[3], ARGV[4], ARGV[5]
local out = {}
if ARGV[8] and ARGV[8] ~= '' then
  -- Before Redis 7 a script must ask for effects replication to write after TIME.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[8])
  now = string.format('%.6f', clock)
  lease_until = string.format('%.6f', clock + tonumber(ARGV[4]))
  out[1] = now
end
-- v[1..8]: p s a fa e tb ra m (each field HMGET looks up costs a scan of the hash).
local n = #out
local function emit(id, v)
  out[n + 1] = id
  out[n + 2] = v[1]
  out[n + 3] = v[8]
  out[n + 4] = v[7]
  out[n + 5] = v[3]
  out[n + 6] = v[5]
  out[n + 7] = v[6]
  n = n + 7
end

local limit = tonumber(ARGV[2])
local total = 0
local claim = 'claim:' .. worker
local held = 'held:' .. worker
-- A call sent again: the first queue's claim list starts with its token whenever the call
-- claimed anything (see the end), and only then may a queue without waiting jobs hold
-- claims of this token to give back. Otherwise an empty queue costs one read.
local again = redis.call('LINDEX', KEYS[7], 0) == ARGV[6]

-- One queue, by its prefix and keys k[1..7] (in the order of KEYS). Returns how many jobs
-- it gave.
local function fetch_queue(prefix, k)
  local prios = redis.call('ZREVRANGE', k[1], 0, -1)
  if #prios == 0 and (not again or redis.call('LINDEX', k[7], 0) ~= ARGV[6]) then
    return 0
  end
  if not k[2] then
    k[2], k[3], k[4], k[5], k[6] = prefix .. 'leases', prefix .. 'sched', prefix .. 'retry', prefix .. 'paused', prefix .. held
  end
  local last = redis.call('LRANGE', k[7], 0, -1)
  if last[1] == ARGV[6] then
    local given = 0
    for i = 2, #last do
      local v = redis.call('HMGET', prefix .. 'j:' .. last[i], 'p', 's', 'a', 'fa', 'e', 'tb', 'ra', 'm', 'lb')
      if v[2] == 'active' and v[9] == worker then
        emit(last[i], v)
        given = given + 1
      end
    end
    return given
  end
  if redis.call('EXISTS', k[5]) == 1 then
    return 0
  end

  local claimed, c = {}, 0
  local jobs = prefix .. 'j:'
  for _, p in ipairs(prios) do
    local want = limit - total - c
    if want <= 0 then break end
    local wkey = prefix .. 'w:' .. p
    local due = redis.call('ZRANGEBYSCORE', wkey, '-inf', now, 'LIMIT', 0, want)
    if #due > 0 then
      -- Due jobs sort before later ones, so the ones just read are the first ranks.
      redis.call('ZREMRANGEBYRANK', wkey, 0, #due - 1)
      for _, id in ipairs(due) do
        local key = jobs .. id
        local v = redis.pcall('HMGET', key, 'p', 's', 'a', 'fa', 'e', 'tb', 'ra', 'm')
        if v.err then
          -- Not a hash (written by hand): set it aside and record the job as dead, rather
          -- than fail every fetch of this queue.
          redis.call('RENAME', key, key .. ':corrupt')
          redis.call('HSET', key, 's', 'dead', 'p', '', 'm', '0|0||' .. now, 'ra', now, 'a', '0',
            'fa', now, 'e', 'bad record: the job key was not a hash (set aside as ' .. key .. ':corrupt)')
          redis.call('ZADD', prefix .. 'dead', now, id)
        elseif not v[1] and redis.call('EXISTS', key) == 1 then
          -- A job hash without its payload (written by hand): dead, not silently dropped.
          redis.call('HSET', key, 's', 'dead', 'fa', now, 'e', 'bad record: the job hash has no payload (field p)')
          redis.call('ZADD', prefix .. 'dead', now, id)
        elseif v[1] then
          if v[2] == 'scheduled' then
            redis.call('ZREM', k[3], id)
          elseif v[2] == 'retry' then
            redis.call('ZREM', k[4], id)
          end
          local attempts = tostring((tonumber(v[3]) or 0) + 1)
          redis.call('HSET', key, 's', 'active', 'a', attempts, 'lb', worker, 'lu', lease_until, 'sa', now)
          if v[4] then redis.call('HDEL', key, 'fa') end
          v[3] = attempts
          c = c + 1
          claimed[c] = id
          emit(id, v)
        end
      end
    end
    if redis.call('ZCARD', wkey) == 0 then
      redis.call('ZREM', k[1], p)
    end
  end

  if c > 0 then
    redis.call('DEL', k[7])
    redis.call('RPUSH', k[7], ARGV[6])
    for i = 1, c, 1000 do
      local j = math.min(i + 999, c)
      redis.call('SADD', k[6], unpack(claimed, i, j))
      redis.call('RPUSH', k[7], unpack(claimed, i, j))
    end
    redis.call('PEXPIRE', k[7], ARGV[7])
    -- The worker's entry keeps the earliest lease of its jobs (each job's own is its lu
    -- field): recover looks at a worker once that time has passed. One entry per worker,
    -- not one per job, spares a sorted-set insert and removal for every job run.
    local earliest = redis.call('ZSCORE', k[2], worker)
    if not earliest or tonumber(earliest) > tonumber(lease_until) then
      redis.call('ZADD', k[2], lease_until, worker)
    end
  end
  return c
end

local left_after = ARGV[9] == '?'
local queues = left_after and 1 or #ARGV - 7
for q = 1, queues do
  if total >= limit then break end
  local prefix, k = ARGV[1], KEYS
  if q > 1 then
    prefix = ARGV[7 + q]
    k = {prefix .. 'prios', false, false, false, false, false, prefix .. claim}
  end
  -- Room for the queue's position and count, filled in once known (or taken back).
  local mark = n
  n = n + 2
  local gave = fetch_queue(prefix, k)
  if gave > 0 then
    out[mark + 1] = q
    out[mark + 2] = gave
    total = total + gave
  else
    n = mark
  end
end
if total > 0 and not again and redis.call('LINDEX', KEYS[7], 0) ~= ARGV[6] then
  -- Claims in later queues only: mark the first queue's list with the token (no ids).
  redis.call('DEL', KEYS[7])
  redis.call('RPUSH', KEYS[7], ARGV[6])
  redis.call('PEXPIRE', KEYS[7], ARGV[7])
end
if left_after then
  local cap = tonumber(ARGV[10]) or limit
  local left, first, upcoming = 0, nil, ''
  if redis.call('EXISTS', KEYS[5]) == 1 then
    upcoming = 'paused'
  else
    for _, p in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
      if left >= cap then break end
      local wkey = ARGV[1] .. 'w:' .. p
      local due = redis.call('ZCOUNT', wkey, '-inf', now)
      left = left + due
      if due == 0 then
        local head = redis.call('ZRANGE', wkey, 0, 0, 'WITHSCORES')[2]
        if head and (first == nil or tonumber(head) < tonumber(first)) then first = head end
      end
    end
    if left == 0 then upcoming = first or '' end
  end
  out[n + 1] = math.min(left, cap)
  out[n + 2] = upcoming
  out[n + 3] = redis.call('GET', ARGV[1] .. 'hint')
end
return out
