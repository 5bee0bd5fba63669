-- assign: QUEUED -> RUNNING for a batch of (job, worker) pairs.
-- ARGV: prefix, now_ms, lease_deadline_ms, n, then per pair: id, worker
-- Returns per pair: { attempt, spec_pb } or { 0, state } when the job is no
-- longer QUEUED (cancelled since, or already taken): the broker skips it.
local p = ARGV[1]
local now = ARGV[2]
local deadline = ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
for k = 0, n - 1 do
  local id, worker = ARGV[5 + 2*k], ARGV[6 + 2*k]
  local key = p .. 'job:' .. id
  local st, typ, spec = unpack(redis.call('HMGET', key, 'state', 'type', 'spec_pb'))
  if st ~= 'QUEUED' then
    redis.call('ZREM', p .. 'queue:' .. (typ or ''), id)
    out[k + 1] = { 0, st or 'MISSING' }
  else
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'RUNNING', 'worker', worker, 'started_ms', now,
               'progress', 0, 'phase', '', 'message', '')
    redis.call('ZREM', p .. 'queue:' .. typ, id)
    redis.call('ZADD', p .. 'leases', deadline, id)
    redis.call('XADD', p .. 'events', 'MAXLEN', '~', '100000', '*',
               'job', id, 'state', 'RUNNING', 'attempt', attempt, 'worker', worker, 'reason', '')
    out[k + 1] = { attempt, spec }
  end
end
return out
