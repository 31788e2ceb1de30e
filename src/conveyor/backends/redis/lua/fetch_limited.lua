-- fetch_limited: claim up to a limit of due jobs of one queue that has limits: its own jobs
-- and those of its buckets (the internal queues of limited jobs, one per limit and key), each
-- bucket giving only what its limit allows, the queue as a whole only what the queue's own
-- limit allows. Counting the running jobs, reading the token buckets and claiming are one
-- script, so no two workers can both take a bucket's last slot.
--
-- KEYS[1]  {ns:q}:ready          ZSET  buckets that may have a job to start, by when their
--                                      first job came due (0: look at it again soon)
-- KEYS[2]  {ns:q}:limits         HASH  limit name ('' for the queue) -> "concurrency|rate|per"
-- KEYS[3]  {ns:q}:tokens         HASH  bucket name (or the queue's) -> "tokens|stamp"
-- KEYS[4]  {ns:q}:paused         STRING present while the queue is paused
-- KEYS[5]  {ns:q}:claim:<worker> LIST  token of the worker's last claim, then queue, id pairs
-- KEYS[6]  {ns:q}:parked         ZSET  buckets out of tokens, by when their next token comes
-- KEYS[7]  {ns:q}:buckets        SET   every bucket of the queue (for a whole-queue concurrency)
-- ARGV[1]  prefix "{ns:q}:"
-- ARGV[2]  limit
-- ARGV[3]  worker id
-- ARGV[4]  lease expiry (now + lease)
-- ARGV[5]  now
-- ARGV[6]  token unique to this call
-- ARGV[7]  milliseconds to remember the claim
-- ARGV[8]  the queue's name
-- ARGV[9]  most buckets to look at (the first by due time: FIFO across keys)
-- ARGV[10…] 3 per job to take one ahead for (fetch_ahead): bucket, id, attempts of a job the
--          worker holds (running, or itself taken ahead). A job listed k times takes up to k,
--          one after another: each follows the one taken before it for that job (the first
--          follows the job itself), so a worker fills a run's chain in one claim.
--
-- A bucket's keys are its queue's prefix followed by "b:<limit name>\31<key>:" (same hash
-- slot): prios, w:<p>, sched, retry, held:<worker>, leases, exactly as a queue's. Its running
-- jobs are the members of its workers' held sets, which every script that ends or moves a
-- run keeps exact, so a slot is free the moment its run ends.
--
-- So that a claim looks only at buckets that may start a job, a bucket leaves the ready set
-- when it has no waiting job, or every slot is taken (the store puts it back with the
-- acknowledgement that frees a slot, and recover puts back every bucket with waiting jobs),
-- or its tokens ran out (it is parked until its next token comes). A claim looks at no more
-- than ARGV[9] of them, the earliest due first, so its cost does not grow with the keys.
--
-- A job taken ahead is claimed like any other (active, in the worker's held set, an attempt,
-- the lease) and noted in its bucket's "ahead" HASH: id -> "worker|after|attempt|sa", the
-- job it follows and that one's attempt (checked when it is taken). It holds no slot while
-- both are in the worker's held set (the worker starts it when the other ends, in its slot):
-- the count of a bucket's running jobs leaves it out until then. An entry whose job it
-- follows ended is settled by the next claim that counts the bucket: its job holds a slot
-- from then on, and started when the other ended (its sa becomes that one's fa).
--
-- Returns two lists: 8 values per claimed job (the stored queue name, then id, p m ra a e tb
-- of its hash, best first (priority DESC, run_at, id) as fetch.lua), and 2 per job taken
-- ahead (its id, the id of the job it follows).
local prefix, worker, lease_until, now, qname = ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[8]
local nownum = tonumber(now)
local out, n = {}, 0
local function emit(queue, id, v)
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = queue, id, v[1], v[8]
  out[n + 5], out[n + 6], out[n + 7], out[n + 8] = v[7], v[3], v[5], v[6]
  n = n + 8
end
local function source_prefix(queue)
  if queue == qname then return prefix end
  return prefix .. 'b:' .. string.sub(queue, #qname + 2) .. ':'
end

local pairs_out = {}
local last = redis.call('LRANGE', KEYS[5], 0, -1)
if last[1] == ARGV[6] then
  for i = 2, #last, 2 do
    local sp = source_prefix(last[i])
    local v = redis.call('HMGET', sp .. 'j:' .. last[i + 1], 'p', 's', 'a', 'fa', 'e', 'tb', 'ra', 'm', 'lb')
    if v[2] == 'active' and v[9] == worker then
      emit(last[i], last[i + 1], v)
      local note = last[i] ~= qname and redis.call('HGET', sp .. 'ahead', last[i + 1])
      if note then
        pairs_out[#pairs_out + 1] = last[i + 1]
        pairs_out[#pairs_out + 1] = string.match(note, '^[^|]*|([^|]*)|')
      end
    end
  end
  return {out, pairs_out}
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {out, pairs_out} end

local function definition(text)
  if not text then return nil end
  local c, r, p = string.match(text, '^([^|]*)|([^|]*)|([^|]*)$')
  if c == nil then return nil end
  local d = {conc = tonumber(c), rate = tonumber(r), per = tonumber(p)}
  if d.rate and not (d.per and d.per > 0) then return nil end
  -- limits.Limit.burst: a tenth of a period's allowance, never less than one second's.
  if d.rate then d.burst = math.max(1, math.ceil(d.rate / 10), math.ceil(d.rate / d.per)) end
  return d
end
local function tokens_of(d, name)
  if not (d and d.rate) then return nil end
  local text = redis.call('HGET', KEYS[3], name)
  if not text then return d.burst end
  local held, stamp = string.match(text, '^([^|]*)|([^|]*)$')
  held, stamp = tonumber(held) or d.burst, tonumber(stamp) or nownum
  return math.min(d.burst, held + math.max(0, nownum - stamp) * d.rate / d.per)
end
local BIG = 1073741824
local function room(d, active, tokens)
  if not d then return BIG end
  local r = BIG
  if d.conc then r = math.max(0, d.conc - active) end
  if tokens then r = math.min(r, math.floor(tokens + 1e-9)) end
  return r
end
-- Jobs of a bucket taken ahead that hold no slot yet: the job and the one it follows both in
-- the worker's held set (one SMISMEMBER per worker). The others are settled (see above). A
-- job it follows that ended and was claimed again is no counter-example: every claim of a
-- bucket runs this script, which settles the entry before that claim.
local function unstarted(p)
  local flat = redis.call('HGETALL', p .. 'ahead')
  if #flat == 0 then return 0 end
  local by_worker = {}
  for i = 1, #flat, 2 do
    local w, x, _, sa = string.match(flat[i + 1], '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    if w then
      local list = by_worker[w]
      if not list then
        list = {}
        by_worker[w] = list
      end
      list[#list + 1] = {flat[i], x, sa}
    else
      redis.call('HDEL', p .. 'ahead', flat[i])
    end
  end
  local count = 0
  for w, list in pairs(by_worker) do
    local ids = {}
    for _, e in ipairs(list) do
      ids[#ids + 1] = e[1]
      ids[#ids + 1] = e[2]
    end
    local held = redis.call('SMISMEMBER', p .. 'held:' .. w, unpack(ids))
    for k, e in ipairs(list) do
      if held[2 * k - 1] == 1 and held[2 * k] == 1 then
        count = count + 1
      else
        redis.call('HDEL', p .. 'ahead', e[1])
        local yv = redis.call('HMGET', p .. 'j:' .. e[1], 's', 'sa')
        if yv[2] == e[3] and yv[1] and yv[1] ~= 'pending' then
          redis.call('HSET', p .. 'j:' .. e[1], 'sa', redis.call('HGET', p .. 'j:' .. e[2], 'fa') or now)
        end
      end
    end
  end
  return count
end
local function running(p)
  local count = 0
  for _, w in ipairs(redis.call('ZRANGE', p .. 'leases', 0, -1)) do
    count = count + redis.call('SCARD', p .. 'held:' .. w)
  end
  if p ~= prefix then count = count - unstarted(p) end
  return count
end

-- Parked buckets whose next token has come are ready again.
local due_parked = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
if #due_parked > 0 then
  for _, b in ipairs(due_parked) do redis.call('ZADD', KEYS[1], 0, b) end
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
end

local defs = {}
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do defs[flat[i]] = definition(flat[i + 1]) end

-- Every source: the queue itself, then the ready buckets due first.
local sources = {{queue = qname, prefix = prefix}}
local total_active = running(prefix)
sources[1].active = total_active
-- The whole queue's limit counts every running job of its buckets: only then are they all
-- read (a queue limit with keyed task limits is the costly combination).
if defs[''] and defs[''].conc then
  for _, b in ipairs(redis.call('SMEMBERS', KEYS[7])) do
    total_active = total_active + running(source_prefix(b))
  end
end
for _, b in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[9]))) do
  local bp = source_prefix(b)
  if redis.call('EXISTS', bp .. 'prios') == 0 then
    redis.call('ZREM', KEYS[1], b)  -- nothing waits: an enqueue or a retry brings it back
  else
    local name = string.match(string.sub(b, #qname + 2), '^([^\31]*)')
    sources[#sources + 1] = {queue = b, prefix = bp, active = running(bp), def = defs[name]}
  end
end

local whole = defs['']
local whole_tokens = tokens_of(whole, qname)
local cap = math.min(tonumber(ARGV[2]), room(whole, total_active, whole_tokens))
if cap <= 0 and #ARGV < 12 then return {out, pairs_out} end

-- Candidates: each source's best due jobs, as many as its room allows.
local cands = {}
for _, s in ipairs(sources) do
  s.tokens = tokens_of(s.def, s.queue)
  local want = cap
  if s.queue ~= qname then want = math.min(cap, room(s.def, s.active, s.tokens)) end
  s.started = 0
  if want > 0 then
    for _, p in ipairs(redis.call('ZREVRANGE', s.prefix .. 'prios', 0, -1)) do
      if want <= 0 then break end
      local due = redis.call('ZRANGEBYSCORE', s.prefix .. 'w:' .. p, '-inf', now, 'WITHSCORES', 'LIMIT', 0, want)
      for i = 1, #due, 2 do
        cands[#cands + 1] = {s = s, p = tonumber(p), ps = p, ra = tonumber(due[i + 1]), id = due[i]}
      end
      want = want - #due / 2
    end
  end
end
table.sort(cands, function(a, b)
  if a.p ~= b.p then return a.p > b.p end
  if a.ra ~= b.ra then return a.ra < b.ra end
  return a.id < b.id
end)

local claimed = {}
local taken, touched = 0, {}
-- Claims one due job of a source (the queue or a bucket); true if it was claimed.
local function claim(sp, squeue, id, ps)
  local key = sp .. 'j:' .. id
  local wkey = sp .. 'w:' .. ps
  redis.call('ZREM', wkey, id)
  touched[wkey] = {sp, ps}
  local v = redis.pcall('HMGET', key, 'p', 's', 'a', 'fa', 'e', 'tb', 'ra', 'm')
  if not v.err and v[1] then
    if v[2] == 'scheduled' then
      redis.call('ZREM', sp .. 'sched', id)
    elseif v[2] == 'retry' then
      redis.call('ZREM', sp .. 'retry', id)
    end
    local attempts = tostring((tonumber(v[3]) or 0) + 1)
    redis.call('HSET', key, 's', 'active', 'a', attempts, 'lb', worker, 'lu', lease_until, 'sa', now)
    if v[4] then redis.call('HDEL', key, 'fa') end
    v[3] = attempts
    redis.call('SADD', sp .. 'held:' .. worker, id)
    if sp ~= prefix then redis.call('HDEL', sp .. 'ahead', id) end  -- a job handed back, claimed again
    local earliest = redis.call('ZSCORE', sp .. 'leases', worker)
    if not earliest or tonumber(earliest) > tonumber(lease_until) then
      redis.call('ZADD', sp .. 'leases', lease_until, worker)
    end
    claimed[#claimed + 1] = squeue
    claimed[#claimed + 1] = id
    emit(squeue, id, v)
    return attempts
  elseif not v.err and redis.call('EXISTS', key) == 1 then
    -- A job hash without its payload (written by hand): dead, not silently dropped.
    redis.call('HSET', key, 's', 'dead', 'fa', now, 'e', 'bad record: the job hash has no payload (field p)')
    redis.call('ZADD', sp .. 'dead', now, id)
  elseif v.err then
    redis.call('RENAME', key, key .. ':corrupt')
    redis.call('HSET', key, 's', 'dead', 'p', '', 'm', '0|0||' .. now, 'ra', now, 'a', '0',
      'fa', now, 'e', 'bad record: the job key was not a hash (set aside as ' .. key .. ':corrupt)')
    redis.call('ZADD', sp .. 'dead', now, id)
  end
  return false
end
for _, c in ipairs(cands) do
  if taken >= cap then break end
  local s = c.s
  -- A bucket's room may be shared by candidates of several priorities: count it again.
  if s.queue == qname or s.started < room(s.def, s.active, s.tokens) then
    if claim(s.prefix, s.queue, c.id, c.ps) then
      s.started = s.started + 1
      taken = taken + 1
    end
  end
end

-- Jobs taken ahead: per bucket named, one per job of the worker's that is still active at
-- that attempt, the best due first; only where every limit is concurrency alone (a rate
-- meters starts, and a job ahead starts later than it is claimed).
if #ARGV >= 12 then
  local whole_def = defs['']
  local want, order, checked = {}, {}, {}
  for i = 10, #ARGV - 2, 3 do
    local b, x, att = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    if string.sub(b, 1, #qname + 1) == qname .. '\31' and not (whole_def and whole_def.rate) then
      local d = defs[string.match(string.sub(b, #qname + 2), '^([^\31]*)')]
      if d and d.conc and not d.rate then
        local ok = checked[x]
        if ok == nil then
          local xv = redis.call('HMGET', source_prefix(b) .. 'j:' .. x, 's', 'lb', 'a')
          ok = xv[1] == 'active' and xv[2] == worker and xv[3] == att
          checked[x] = ok
        end
        if ok then
          if not want[b] then
            want[b] = {}
            order[#order + 1] = b
          end
          want[b][#want[b] + 1] = {x, att}
        end
      end
    end
  end
  for _, b in ipairs(order) do
    local bp, runs = source_prefix(b), want[b]
    local need, picks = #runs, {}
    for _, p in ipairs(redis.call('ZREVRANGE', bp .. 'prios', 0, -1)) do
      if need <= 0 then break end
      local due = redis.call('ZRANGEBYSCORE', bp .. 'w:' .. p, '-inf', now, 'LIMIT', 0, need)
      for _, id in ipairs(due) do picks[#picks + 1] = {id, p} end
      need = need - #due
    end
    local k, tail = 0, {}  -- tail: per job listed, the last job taken after it, and its attempt
    for _, pick in ipairs(picks) do
      local attempts = claim(bp, b, pick[1], pick[2])
      if attempts then
        k = k + 1
        local x = runs[k][1]
        local after = tail[x] or runs[k]
        redis.call('HSET', bp .. 'ahead', pick[1], worker .. '|' .. after[1] .. '|' .. after[2] .. '|' .. now)
        pairs_out[#pairs_out + 1] = pick[1]
        pairs_out[#pairs_out + 1] = after[1]
        tail[x] = {pick[1], attempts}
      end
    end
    if k > 0 then redis.call('PEXPIRE', bp .. 'ahead', 3600000) end
  end
end
for wkey, sp in pairs(touched) do
  if redis.call('ZCARD', wkey) == 0 then redis.call('ZREM', sp[1] .. 'prios', sp[2]) end
end

-- Buckets that can start nothing more leave the ready set: full ones until a slot frees,
-- those out of tokens until their next token. The others move to where their first waiting
-- job now puts them.
for i = 2, #sources do
  local s, d = sources[i], sources[i].def
  if d and d.conc and s.active + s.started >= d.conc then
    redis.call('ZREM', KEYS[1], s.queue)
  elseif d and s.tokens and s.tokens - s.started < 1 then
    redis.call('ZREM', KEYS[1], s.queue)
    redis.call('ZADD', KEYS[6], nownum + (1 - (s.tokens - s.started)) * d.per / d.rate, s.queue)
  else
    local top = redis.call('ZREVRANGE', s.prefix .. 'prios', 0, 0)[1]
    local head = top and redis.call('ZRANGE', s.prefix .. 'w:' .. top, 0, 0, 'WITHSCORES')[2]
    if head then redis.call('ZADD', KEYS[1], head, s.queue) else redis.call('ZREM', KEYS[1], s.queue) end
  end
end

-- Tokens spent: each rate-limited bucket's, and the queue's own.
local function spend(d, tokens, name, count)
  if d and d.rate and count > 0 then
    redis.call('HSET', KEYS[3], name, string.format('%.6f|%s', tokens - count, now))
  end
end
for _, s in ipairs(sources) do
  if s.queue ~= qname then spend(s.def, s.tokens, s.queue, s.started) end
end
spend(whole, whole_tokens, qname, taken)

if #claimed > 0 then
  redis.call('DEL', KEYS[5])
  redis.call('RPUSH', KEYS[5], ARGV[6])
  for i = 1, #claimed, 1000 do
    redis.call('RPUSH', KEYS[5], unpack(claimed, i, math.min(i + 999, #claimed)))
  end
  redis.call('PEXPIRE', KEYS[5], ARGV[7])
end
return {out, pairs_out}
