/**
 * The queue's Lua scripts. Each runs atomically in Redis, so a job and the records of its
 * readings change together. `#!lua` makes Redis check memory before a script that may write
 * starts (with `noeviction` at `maxmemory`, such a script is refused whole, never half-run),
 * and holds each script to the keys it declares (needed on Redis Cluster). Only the enqueue
 * grows what Redis holds; the writer's bookkeeping (takeover, heartbeat, failure, trim) moves or
 * frees what is there and is marked `allow-oom`, so writers keep draining a full Redis.
 *
 * A failed job's record is built in one place (FAIL_JOB), used by the writer when a job ran out
 * of attempts and by the reclaim when it stalled too often.
 */

const FAIL_JOB = `
local function failJob(stream, failed, failedAt, group, id, reason, now)
  local p = redis.call('XPENDING', stream, group, id, id, 1)[1]
  local deliveries = p and p[4] or 0
  local e = redis.call('XRANGE', stream, id, id)[1]
  local kept = 0
  if e then
    local readings = '[]'
    for k = 1, #e[2], 2 do
      if e[2][k] == 'r' then readings = e[2][k + 1] end
    end
    redis.call('HSET', failed, id, '{"reason":' .. cjson.encode(reason) .. ',"failedAt":' .. now .. ',"deliveries":' .. deliveries .. ',"readings":' .. readings .. '}')
    redis.call('ZADD', failedAt, now, id)
    kept = 1
  end
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  return kept
end
`;

/**
 * One call per group of submissions (the API): claims each keyed reading's idempotency record
 * (SET NX GET: a record with another fingerprint is a 409), adds one stream entry holding the
 * readings that do not conflict, and records reading id -> entry id for each of them, so a
 * status lookup can say "queued".
 *
 * KEYS[1] = stream; for reading i: KEYS[2i] = its pending marker, KEYS[2i+1] = its idempotency
 * record (or the marker again when it has no key). ARGV[1] = idempotency TTL, ARGV[2] = marker
 * TTL, then three per reading: fingerprint ('' when it has no key), its JSON, its id when its
 * client waits for the commit ('' otherwise). Returns { 0-based indexes of conflicts, entry id
 * ('' when nothing was queued) }.
 */
export const ENQUEUE_SCRIPT = `#!lua
local idemTtl, pendingTtl = ARGV[1], ARGV[2]
local conflicts, parts, notify, queued = {}, {}, {}, {}
for i = 1, (#KEYS - 1) / 2 do
  local a = 3 * i
  local fp = ARGV[a]
  local ok = true
  if fp ~= '' then
    local old = redis.call('SET', KEYS[2 * i + 1], fp, 'NX', 'GET', 'EX', idemTtl)
    if old and old ~= fp then ok = false end
  end
  if ok then
    parts[#parts + 1] = ARGV[a + 1]
    queued[#queued + 1] = i
    if ARGV[a + 2] ~= '' then notify[#notify + 1] = ARGV[a + 2] end
  else
    conflicts[#conflicts + 1] = i - 1
  end
end
if #parts == 0 then return {conflicts, ''} end
local readings = '[' .. table.concat(parts, ',') .. ']'
local id
if #notify > 0 then
  id = redis.call('XADD', KEYS[1], '*', 'r', readings, 'n', table.concat(notify, ','))
else
  id = redis.call('XADD', KEYS[1], '*', 'r', readings)
end
for _, i in ipairs(queued) do
  redis.call('SET', KEYS[2 * i], id, 'EX', pendingTtl)
end
return {conflicts, id}
`;

/**
 * Takes over jobs whose writer went quiet (killed, paused, cut off) for longer than the lock:
 * every job of the group idle at least ARGV[3] ms, up to ARGV[4] of them. A job that has
 * stalled more than ARGV[5] times goes to the failed set instead, with the reason ARGV[7].
 *
 * KEYS: stream, failed, failedAt. ARGV: group, consumer, min idle ms, count, max stalled count,
 * now (ms), reason. Returns { claimed entries as XCLAIM gives them, ids moved to the failed set }.
 */
export const RECLAIM_SCRIPT = `#!lua flags=allow-oom
${FAIL_JOB}
local stream, group, consumer, minIdle = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local maxStalled = tonumber(ARGV[5])
local stalled = redis.call('XPENDING', stream, group, 'IDLE', minIdle, '-', '+', ARGV[4])
local claim, dead = {}, {}
for _, p in ipairs(stalled) do
  if p[4] > maxStalled then
    -- An entry already deleted (its job committed and half acknowledged) is only dropped, not reported.
    if failJob(stream, KEYS[2], KEYS[3], group, p[1], ARGV[7], ARGV[6]) == 1 then dead[#dead + 1] = p[1] end
  else
    claim[#claim + 1] = p[1]
  end
end
local claimed = {}
if #claim > 0 then
  claimed = redis.call('XCLAIM', stream, group, consumer, minIdle, unpack(claim))
end
return {claimed, dead}
`;

/**
 * A writer still working on jobs it holds (a long database outage, a slow batch) says so: their
 * idle time starts again, so no other writer takes them. Only jobs still owned by this writer:
 * one another writer has taken over stays with it. JUSTID: not counted as a delivery.
 *
 * KEYS: stream. ARGV: group, consumer, entry ids. Returns the ids still owned.
 */
export const HEARTBEAT_SCRIPT = `#!lua flags=allow-oom
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local args = {stream, group, consumer, 0}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)[1]
  if p and p[2] == consumer then args[#args + 1] = ARGV[i] end
end
if #args == 4 then return {} end
args[#args + 1] = 'JUSTID'
return redis.call('XCLAIM', unpack(args))
`;

/**
 * A writer stopping hands back jobs it holds but will not finish (one waiting out a retry
 * backoff, or still unwritten when the drain runs out of time): their idle time is set to the
 * lock, so the next reclaim of any writer takes them at once, and their delivery count is put
 * back one, so that takeover is not counted as a stall. Only jobs still this writer's.
 *
 * KEYS: stream. ARGV: group, consumer, lock (ms), entry ids. Returns how many were handed back.
 */
export const RELEASE_SCRIPT = `#!lua flags=allow-oom
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local released = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)[1]
  if p and p[2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, ARGV[i], 'IDLE', ARGV[3], 'RETRYCOUNT', math.max(p[4] - 1, 0), 'JUSTID')
    released = released + 1
  end
end
return released
`;

/**
 * A job the writer gave up on (its attempts ran out) moves to the failed set with the reason,
 * and leaves the stream in the same step; only while that writer still owns it. A job another
 * writer has taken over (this one was quiet past the lock) is that writer's to finish: its
 * attempt may well succeed, and failing the job under it would contradict the stored rows.
 *
 * KEYS: stream, failed, failedAt. ARGV: group, entry id, reason, now (ms), consumer. Returns 1
 * if the job was moved, 0 if it was not this writer's any more (finished, failed or taken over).
 */
export const FAIL_SCRIPT = `#!lua flags=allow-oom
${FAIL_JOB}
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
if not p or p[2] ~= ARGV[5] then return 0 end
return failJob(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
`;

/**
 * Where a reading is, in one round trip: its marker names its job; the job is either still in
 * the stream (queued) or in the failed set. Read-only, so it answers even with Redis at maxmemory.
 *
 * KEYS: pending marker, stream, failed. Returns nil, or { 'queued' | 'failed', readings JSON |
 * failed record JSON, entry id }.
 */
export const LOCATE_SCRIPT = `#!lua flags=no-writes
local id = redis.call('GET', KEYS[1])
if not id then return nil end
local e = redis.call('XRANGE', KEYS[2], id, id)[1]
if e then
  for k = 1, #e[2], 2 do
    if e[2][k] == 'r' then return {'queued', e[2][k + 1], id} end
  end
end
local f = redis.call('HGET', KEYS[3], id)
if f then return {'failed', f, id} end
return nil
`;

/**
 * Drops failed jobs older than the retention, oldest first, up to ARGV[2] of them. It frees
 * memory, so it may run at maxmemory. KEYS: failed, failedAt. ARGV: cutoff (ms), limit.
 */
export const TRIM_FAILED_SCRIPT = `#!lua flags=allow-oom
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids > 0 then
  redis.call('HDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
end
return #ids
`;
