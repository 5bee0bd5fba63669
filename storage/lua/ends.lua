-- ends: the end of attempts. One script for the three ways an attempt ends,
-- so the fencing rule and the dependency cascade live in one place.
-- ARGV: prefix, now_ms, n, then per item:
--   op, id, attempt, worker, a, b, noutputs, k1, v1, ...
--   op "finish":  a = outcome (SUCCEEDED|FAILED|CANCELLED), b = error; outputs
--                 are stored as out.<key>; the result summary is out.summary
--   op "requeue": a = charge ("1" counts against max_attempts), b = reason
--   op "cancel":  attempt/worker ignored; b = reason (PENDING/QUEUED end at
--                 once, RUNNING gets cancel_requested)
-- Returns per item: { status, state, attempt, worker, error, released..., "|", cancelled... }
--   status: "ok", "stale" (fenced), "notfound", "final" (already ended),
--           "done" (this very result was recorded before),
--           "running" (cancel forwarded to the worker)
--   released: id, type, score triples of children that became QUEUED
--   cancelled: ids of descendants cancelled by the cascade
local p = ARGV[1]
local now = ARGV[2]
local n = tonumber(ARGV[3])

local function event(id, state, attempt, worker, reason)
  redis.call('XADD', p .. 'events', 'MAXLEN', '~', '100000', '*',
             'job', id, 'state', state, 'attempt', attempt, 'worker', worker, 'reason', reason)
end

-- Ends job id in a final state and walks its children.
local function finalize(id, state, attempt, worker, reason, res)
  local key = p .. 'job:' .. id
  res.error = reason
  redis.call('HSET', key, 'state', state, 'finished_ms', now, 'error', reason)
  if state == 'SUCCEEDED' then redis.call('HSET', key, 'progress', 1) end
  redis.call('ZREM', p .. 'leases', id)
  redis.call('SREM', p .. 'active', id)
  event(id, state, attempt, worker, reason)
  local children = redis.call('SMEMBERS', key .. ':children')
  if state == 'SUCCEEDED' then
    for _, c in ipairs(children) do
      local ck = p .. 'job:' .. c
      local w = redis.call('HINCRBY', ck, 'waiting', -1)
      if w <= 0 and redis.call('HGET', ck, 'state') == 'PENDING' then
        local typ, score = unpack(redis.call('HMGET', ck, 'type', 'score'))
        redis.call('HSET', ck, 'state', 'QUEUED', 'queued_ms', now)
        redis.call('ZADD', p .. 'queue:' .. typ, score, c)
        event(c, 'QUEUED', 0, '', '')
        table.insert(res.released, c); table.insert(res.released, typ)
        table.insert(res.released, score)
      end
    end
  else
    -- A failed or cancelled parent cancels every waiting descendant.
    local why = 'parent ' .. id .. ' ' .. state
    if reason ~= '' then why = why .. ': ' .. reason end
    local stack = {}
    for _, c in ipairs(children) do table.insert(stack, { c, why }) end
    while #stack > 0 do
      local top = table.remove(stack)
      local c, cwhy = top[1], top[2]
      local ck = p .. 'job:' .. c
      if redis.call('HGET', ck, 'state') == 'PENDING' then
        redis.call('HSET', ck, 'state', 'CANCELLED', 'finished_ms', now, 'error', cwhy)
        redis.call('SREM', p .. 'active', c)
        event(c, 'CANCELLED', 0, '', cwhy)
        table.insert(res.cancelled, c)
        local cwhy2 = 'parent ' .. c .. ' CANCELLED: ' .. cwhy
        for _, g in ipairs(redis.call('SMEMBERS', ck .. ':children')) do
          table.insert(stack, { g, cwhy2 })
        end
      end
    end
  end
end

local out = {}
local i = 4
for k = 1, n do
  local op, id, attempt, worker, a, b = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]),
                                        ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local nout = tonumber(ARGV[i+6]); i = i + 7
  local outputs = {}
  for q = 1, nout do
    table.insert(outputs, ARGV[i]); table.insert(outputs, ARGV[i+1]); i = i + 2
  end
  local key = p .. 'job:' .. id
  local st, cur, cw, cancel_req, maxa = unpack(redis.call('HMGET', key,
      'state', 'attempt', 'worker', 'cancel_requested', 'max_attempts'))
  local res = { released = {}, cancelled = {} }
  local status, state = 'ok', st
  cur = tonumber(cur or '0')
  if not st then
    status = 'notfound'
  elseif st == 'SUCCEEDED' or st == 'FAILED' or st == 'CANCELLED' then
    if op == 'cancel' then
      status = 'final'
    elseif op == 'finish' and cur == attempt and cw == worker then
      status = 'done'    -- a result sent again after a lost ack: already recorded
    else
      status = 'stale'
    end
  elseif op == 'cancel' then
    if st == 'RUNNING' then
      redis.call('HSET', key, 'cancel_requested', 1, 'message', 'cancel requested',
                 'cancel_reason', (b ~= '' and b) or 'cancelled by user')
      status = 'running'
      attempt = cur; worker = cw
    else
      local typ = redis.call('HGET', key, 'type')
      redis.call('ZREM', p .. 'queue:' .. typ, id)
      state = 'CANCELLED'
      finalize(id, state, cur, '', (b ~= '' and b) or 'cancelled by user', res)
    end
  elseif st ~= 'RUNNING' or cur ~= attempt or cw ~= worker then
    status = 'stale'   -- fencing: an old attempt or another worker
  elseif op == 'finish' then
    state = a
    if state == 'CANCELLED' and cancel_req == '1' then
      b = redis.call('HGET', key, 'cancel_reason') or b
    end
    if #outputs > 0 then
      local kv = {}
      for q = 1, #outputs, 2 do
        if outputs[q] == 'summary' then
          table.insert(kv, 'result'); table.insert(kv, outputs[q+1])
        else
          table.insert(kv, 'out.' .. outputs[q]); table.insert(kv, outputs[q+1])
        end
      end
      redis.call('HSET', key, unpack(kv))
    end
    finalize(id, state, attempt, worker, b, res)
  else -- requeue
    if cancel_req == '1' then
      state = 'CANCELLED'
      finalize(id, state, attempt, worker,
               (redis.call('HGET', key, 'cancel_reason') or 'cancelled by user') ..
               ' (' .. b .. ')', res)
    elseif a == '1' and attempt >= tonumber(maxa) then
      state = 'FAILED'
      finalize(id, state, attempt, worker,
               'gave up after ' .. attempt .. ' attempts: ' .. b, res)
    else
      state = 'QUEUED'
      local typ, score = unpack(redis.call('HMGET', key, 'type', 'score'))
      if a ~= '1' then
        -- a hand-back is not a failure: give the attempt back to the budget
        redis.call('HINCRBY', key, 'max_attempts', 1)
      end
      redis.call('HSET', key, 'state', 'QUEUED', 'worker', '', 'queued_ms', now,
                 'message', b)
      redis.call('ZREM', p .. 'leases', id)
      redis.call('ZADD', p .. 'queue:' .. typ, score, id)
      event(id, 'QUEUED', attempt, worker, b)
      table.insert(res.released, id); table.insert(res.released, typ)
      table.insert(res.released, score)
    end
  end
  local r = { status, state or '', attempt or 0, worker or '', res.error or '' }
  for _, v in ipairs(res.released) do table.insert(r, v) end
  table.insert(r, '|')
  for _, v in ipairs(res.cancelled) do table.insert(r, v) end
  out[k] = r
end
return out
