-- Shared by the scripts that move or seal a batch (batch_apply, batch_seal, batch_fix):
-- wire.py's script_source pastes it over a script's include line for it. Uses the including
-- script's `prefix` ('{ns:b}:'), `now`, and KEYS named fire ({ns:b}:fire) and fin
-- ({ns:b}:fin) through the locals `fire_key` and `fin_key` it sets before the include.
--
-- decide(batch): if the batch is sealed (u, its intakes not yet sealed, is 0: every job it
-- counts is stored, see batch_create.lua), the callbacks due and not yet fired are marked
-- fired and added to the fire set (exactly one call sees each due and not fired: this is one
-- step in the slot {ns:b}); the batch joins the finished index by now when every job it
-- counts has ended, and leaves it otherwise. Returns the fire entries added.
local function decide(batch, fired)
  local h = prefix .. 'h:' .. batch
  local v = redis.call('HMGET', h, 't', 'c', 'd', 'x', 'pa', 'cb:success', 'cf:success',
    'cb:complete', 'cf:complete', 'cb:death', 'cf:death', 'u')
  if not v[1] then return end
  local total, c, dd, x = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
  -- Jobs still being stored (an intake not sealed), or none counted yet (a batch made
  -- empty, to be filled by add): nothing is decided.
  if (tonumber(v[12]) or 0) > 0 or total <= 0 then
    redis.call('ZREM', fin_key, batch)
    return
  end
  local due = {
    success = v[6] and not v[7] and c >= total,
    complete = v[8] and not v[9] and c + dd + x >= total,
    death = v[10] and not v[11] and dd > 0,
  }
  for _, kind in ipairs({'death', 'complete', 'success'}) do
    if due[kind] then
      redis.call('HSET', h, 'cf:' .. kind, now)
      local entry = batch .. '|' .. kind
      redis.call('SADD', fire_key, entry)
      fired[#fired + 1] = entry
      -- A nested batch's on_success and on_death join its parent as they fire (its
      -- on_complete was counted there when it was made): the parent is open again.
      if kind ~= 'complete' and v[5] and v[5] ~= '' and redis.call('EXISTS', prefix .. 'h:' .. v[5]) == 1 then
        redis.call('HINCRBY', prefix .. 'h:' .. v[5], 't', 1)
        redis.call('ZREM', fin_key, v[5])
      end
    end
  end
  if total > 0 and c + dd + x >= total then
    redis.call('ZADD', fin_key, now, batch)
  else
    redis.call('ZREM', fin_key, batch)
  end
end
