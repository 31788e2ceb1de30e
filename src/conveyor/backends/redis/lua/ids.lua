-- ids: one page of one queue's jobs in a state, after a cursor, for the admin listings
-- (read only). Reads O(log n + page) of each sorted set, never a whole state: a page starts
-- at a rank found from the cursor's score (ZCOUNT) and, among members of that same score, by
-- a binary search on their ids (Redis orders equal scores by member).
--
-- KEYS[1]  {ns:q}:prios      ZSET  priorities that have waiting jobs
-- KEYS[2]  {ns:q}:sched      ZSET  ids stored as 'scheduled', by run_at
-- KEYS[3]  {ns:q}:retry      ZSET  ids stored as 'retry', by run_at
-- KEYS[4]  {ns:q}:leases     ZSET  ids of the workers holding jobs (their held sets)
-- KEYS[5]  {ns:q}:done       ZSET  completed job ids
-- KEYS[6]  {ns:q}:dead       ZSET  dead job ids
-- KEYS[7]  {ns:q}:cancelled  ZSET  cancelled job ids
-- KEYS[8]  {ns:q}:waiting    ZSET  jobs waiting for others, by enqueue time
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  state, as the admin API counts states: 'pending' includes due scheduled and retry
--          jobs, 'scheduled' and 'retry' only those not due
-- ARGV[3]  now
-- ARGV[4]  at most this many ids
-- ARGV[5]  how many jobs to pass over after the cursor first: a client reads a long stretch
--          (a search) as several calls of one pipeline, each from the same cursor and
--          passing over the ones before it, so that no call holds the server for long
-- ARGV[6]  k, how many search texts follow (0: no search)
-- ARGV[7…6+k]  the texts: a job matches when its payload holds every one
-- ARGV[7+k…] the cursor (absent: from the start): pending: priority, run_at, id;
--          scheduled, retry, completed, dead, cancelled: score, id; active: id
--
-- Returns {id, score, priority, matched, …} in listing order: pending by priority DESC,
-- run_at, id (claim order); scheduled and retry by run_at, id; completed, dead and cancelled
-- by finished_at DESC, id DESC (waiting by enqueue time DESC); active by id DESC (a few per worker, read whole). matched is
-- 1 when the job's payload holds every text (always, without a search), else 0: a search
-- reads one field of each job listed here, never the jobs into the client.
local prefix, state, now = ARGV[1], ARGV[2], ARGV[3]
local limit = tonumber(ARGV[4])
local skip = tonumber(ARGV[5])
local needles = {}
for i = 7, 6 + tonumber(ARGV[6]) do needles[#needles + 1] = ARGV[i] end
local cursor = {}
for i = 7 + #needles, #ARGV do cursor[#cursor + 1] = ARGV[i] end
local out = {}

local function matched(id)
  if #needles == 0 then return 1 end
  local payload = redis.call('HGET', prefix .. 'j:' .. id, 'p')
  if not payload then return 0 end
  for _, needle in ipairs(needles) do
    if not string.find(payload, needle, 1, true) then return 0 end
  end
  return 1
end

local function emit(id, score, priority)
  out[#out + 1] = id
  out[#out + 1] = score
  out[#out + 1] = priority
  out[#out + 1] = matched(id)
end

-- Byte order, as Redis orders members (Lua's own < follows the server's locale).
local function less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- How many members of key sort before (score, id); with inclusive, before or at it.
local function rank(key, score, id, inclusive)
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  local hi = redis.call('ZCOUNT', key, '-inf', score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local member = redis.call('ZRANGE', key, mid, mid)[1]
    if less(member, id) or (inclusive and member == id) then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Members of ranks first..last (ascending), appended in that order or reversed.
local function take(key, first, last, reversed, priority)
  if last < first then return end
  local got = redis.call('ZRANGE', key, first, last, 'WITHSCORES')
  local n = #got / 2
  for i = 1, n do
    local j = reversed and (n - i + 1) or i
    emit(got[2 * j - 1], got[2 * j], priority)
  end
end

if state == 'pending' then
  local cp, crun, cid = tonumber(cursor[1]), cursor[2], cursor[3]
  for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1, 'REV')) do
    local room = limit - #out / 4
    if room <= 0 then break end
    local np = tonumber(p)
    if cp == nil or np <= cp then
      local wkey = prefix .. 'w:' .. p
      local first = 0
      if cp ~= nil and np == cp then first = rank(wkey, crun, cid, true) end
      local due = redis.call('ZCOUNT', wkey, '-inf', now)
      if skip > 0 then
        local here = math.max(due - first, 0)
        local passed = math.min(skip, here)
        first, skip = first + passed, skip - passed
      end
      take(wkey, first, math.min(first + room, due) - 1, false, p)
    end
  end
elseif state == 'scheduled' or state == 'retry' then
  local key = state == 'scheduled' and KEYS[2] or KEYS[3]
  local first = redis.call('ZCOUNT', key, '-inf', now)
  if cursor[1] then first = math.max(first, rank(key, cursor[1], cursor[2], true)) end
  first = first + skip
  take(key, first, first + limit - 1, false, '0')
elseif state == 'completed' or state == 'dead' or state == 'cancelled' or state == 'waiting' then
  local key = ({completed = KEYS[5], dead = KEYS[6], cancelled = KEYS[7], waiting = KEYS[8]})[state]
  local stop = cursor[1] and rank(key, cursor[1], cursor[2], false) or redis.call('ZCARD', key)
  stop = stop - skip
  take(key, math.max(stop - limit, 0), stop - 1, true, '0')
elseif state == 'active' then
  local found = {}
  for _, worker in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'held:' .. worker)) do
      if cursor[1] == nil or less(id, cursor[1]) then found[#found + 1] = id end
    end
  end
  table.sort(found, function(a, b) return less(b, a) end)
  for i = skip + 1, math.min(skip + limit, #found) do emit(found[i], '0', '0') end
end
return out
