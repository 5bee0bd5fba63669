-- progress: a worker's progress, metrics and log lines for its current attempt.
-- ARGV: prefix, now_ms, n, then per item:
--   id, attempt, worker, fraction ("" = unchanged), phase, message,
--   nmetrics, k1, v1, ..., nlines, line1, ...
-- Fenced like results: an old attempt's progress is dropped. Returns per item 1 or 0.
local p = ARGV[1]
local now = ARGV[2]
local n = tonumber(ARGV[3])
local out = {}
local i = 4
for k = 1, n do
  local id, attempt, worker = ARGV[i], ARGV[i+1], ARGV[i+2]
  local frac, phase, msg = ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local nm = tonumber(ARGV[i+6]); i = i + 7
  local metrics = {}
  for q = 1, nm do table.insert(metrics, ARGV[i]); table.insert(metrics, ARGV[i+1]); i = i + 2 end
  local nl = tonumber(ARGV[i]); i = i + 1
  local lines = {}
  for q = 1, nl do table.insert(lines, ARGV[i]); i = i + 1 end
  local key = p .. 'job:' .. id
  local st, cur, cw = unpack(redis.call('HMGET', key, 'state', 'attempt', 'worker'))
  if st == 'RUNNING' and cur == attempt and cw == worker then
    local kv = {}
    if frac ~= '' then table.insert(kv, 'progress'); table.insert(kv, frac) end
    if phase ~= '' then table.insert(kv, 'phase'); table.insert(kv, phase) end
    if msg ~= '' then table.insert(kv, 'message'); table.insert(kv, msg) end
    for q = 1, #metrics, 2 do
      table.insert(kv, 'metric.' .. metrics[q]); table.insert(kv, metrics[q+1])
    end
    if #kv > 0 then
      redis.call('HSET', key, unpack(kv))
      redis.call('XADD', p .. 'events', 'MAXLEN', '~', '100000', '*', 'job', id,
                 'kind', 'progress', 'attempt', attempt, 'progress', frac,
                 'phase', phase, 'message', msg)
    end
    if #metrics > 0 then
      redis.call('XADD', key .. ':metrics', 'MAXLEN', '~', '100000', '*',
                 'attempt', attempt, unpack(metrics))
    end
    if #lines > 0 then
      redis.call('RPUSH', key .. ':log', unpack(lines))
      redis.call('LTRIM', key .. ':log', -1000, -1)
    end
    out[k] = 1
  else
    out[k] = 0
  end
end
return out
