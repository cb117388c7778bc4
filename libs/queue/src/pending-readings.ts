/**
 * One script per queued job: claims each reading's idempotency key (SET NX GET) and, for
 * readings that do not conflict, records reading id -> job id so a status lookup can say
 * "queued". Returns the 0-based indexes of readings whose key was already used with a
 * different payload (409).
 *
 * KEYS: for reading i, KEYS[2i-1] = pending key, KEYS[2i] = idempotency key (or the pending
 * key again when the reading has none). ARGV: idempotency TTL, pending TTL, job id, then one
 * fingerprint per reading ('' when it has no key).
 */
export const CLAIM_READINGS_SCRIPT = `
local idemTtl, pendingTtl, jobId = ARGV[1], ARGV[2], ARGV[3]
local conflicts = {}
for i = 1, #KEYS / 2 do
  local fp = ARGV[3 + i]
  local ok = true
  if fp ~= '' then
    local old = redis.call('SET', KEYS[2 * i], fp, 'NX', 'GET', 'EX', idemTtl)
    if old and old ~= fp then
      ok = false
      conflicts[#conflicts + 1] = i - 1
    end
  end
  if ok then
    redis.call('SET', KEYS[2 * i - 1], jobId, 'EX', pendingTtl)
  end
end
return conflicts
`;
