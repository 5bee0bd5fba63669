-- submit: create the jobs of one or more Submit messages, each group atomic.
-- ARGV: prefix, now_ms, default_max_attempts, ngroups, then per group:
--   nitems, then per item:
--   id, type, priority, max_attempts, name, idem_key, pipeline, spec_summary,
--   spec_pb, score, nparents, parent ids...
-- Returns per group: { "ok", id1, state1, existed1, id2, ... } or { "err", message }.
-- A group is validated completely before anything of it is written, so a
-- rejected group leaves no trace (Lua stops nothing half-way on our errors).
local p = ARGV[1]
local now = ARGV[2]
local default_max = tonumber(ARGV[3])
local ngroups = tonumber(ARGV[4])
local i = 5
local out = {}
local terminal = { SUCCEEDED = true, FAILED = true, CANCELLED = true }

local function event(id, state, attempt, reason)
  redis.call('XADD', p .. 'events', 'MAXLEN', '~', '100000', '*',
             'job', id, 'state', state, 'attempt', attempt, 'worker', '', 'reason', reason)
end

for g = 1, ngroups do
  local nitems = tonumber(ARGV[i]); i = i + 1
  local items = {}
  local ids_here = {}
  local err = nil
  for k = 1, nitems do
    local it = { id = ARGV[i], type = ARGV[i+1], priority = ARGV[i+2],
                 max_attempts = tonumber(ARGV[i+3]), name = ARGV[i+4],
                 idem = ARGV[i+5], pipeline = ARGV[i+6], summary = ARGV[i+7],
                 spec_pb = ARGV[i+8], score = ARGV[i+9], parents = {} }
    local np = tonumber(ARGV[i+10]); i = i + 11
    for q = 1, np do it.parents[q] = ARGV[i]; i = i + 1 end
    if it.max_attempts == 0 then it.max_attempts = default_max end
    if it.idem ~= '' then
      it.existing = redis.call('GET', p .. 'idem:' .. it.idem)
    end
    if not err and not it.existing then
      for _, par in ipairs(it.parents) do
        if not ids_here[par] and redis.call('EXISTS', p .. 'job:' .. par) == 0 then
          err = 'parent job ' .. par .. ' not found'
        end
      end
    end
    ids_here[it.id] = true
    items[k] = it
  end
  if err then
    out[g] = { 'err', err }
  else
    local res = { 'ok' }
    for _, it in ipairs(items) do
      if it.existing then
        local st = redis.call('HGET', p .. 'job:' .. it.existing, 'state') or 'UNKNOWN'
        table.insert(res, it.existing); table.insert(res, st); table.insert(res, 1)
      else
        local key = p .. 'job:' .. it.id
        local waiting, dead = 0, nil
        for _, par in ipairs(it.parents) do
          local pst, perr = unpack(redis.call('HMGET', p .. 'job:' .. par, 'state', 'error'))
          if pst == 'FAILED' or pst == 'CANCELLED' then
            if not dead then
              dead = 'parent ' .. par .. ' ' .. pst
              if perr and perr ~= '' then dead = dead .. ': ' .. perr end
            end
          elseif pst ~= 'SUCCEEDED' then
            waiting = waiting + 1
            redis.call('SADD', p .. 'job:' .. par .. ':children', it.id)
          end
        end
        local state = 'QUEUED'
        if dead then state = 'CANCELLED' elseif waiting > 0 then state = 'PENDING' end
        redis.call('HSET', key, 'id', it.id, 'type', it.type, 'name', it.name,
          'state', state, 'priority', it.priority, 'attempt', 0,
          'max_attempts', it.max_attempts, 'worker', '',
          'parents', table.concat(it.parents, ','), 'waiting', waiting,
          'pipeline', it.pipeline, 'idempotency_key', it.idem,
          'created_ms', now, 'queued_ms', (state == 'QUEUED') and now or '',
          'started_ms', '', 'finished_ms', (state == 'CANCELLED') and now or '',
          'progress', 0, 'phase', '', 'message', '', 'error', dead or '',
          'spec', it.summary, 'result', '', 'cancel_requested', 0,
          'score', it.score, 'spec_pb', it.spec_pb)
        redis.call('ZADD', p .. 'jobs', now, it.id)
        if state == 'QUEUED' then
          redis.call('ZADD', p .. 'queue:' .. it.type, it.score, it.id)
        end
        if state ~= 'CANCELLED' then redis.call('SADD', p .. 'active', it.id) end
        if it.idem ~= '' then redis.call('SET', p .. 'idem:' .. it.idem, it.id) end
        event(it.id, state, 0, dead or '')
        table.insert(res, it.id); table.insert(res, state); table.insert(res, 0)
      end
    end
    out[g] = res
  end
end
return out
