import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import { LuaScript } from '#libs/queue';
import { ApiError } from '../http/api-error.js';

/** What the throttler expects back: its record type is not exported from the package's entry. */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/** Fixed window per client: one INCR per request, the window's expiry set on its first hit. */
const HIT_SCRIPT = new LuaScript(`
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {hits, ttl}
`);

/**
 * Rate-limit counters in Redis, so the limit holds across every API replica. When Redis is
 * unreachable the request gets the same fast 503 as an enqueue would.
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  constructor(
    private readonly redis: Redis,
    private readonly keyFor: (key: string) => string,
  ) {}

  async increment(key: string, ttl: number, limit: number, _blockDuration: number, throttlerName: string): Promise<ThrottlerStorageRecord> {
    let reply: [number, number];
    try {
      reply = (await HIT_SCRIPT.run(this.redis, [this.keyFor(`${throttlerName}:${key}`)], [ttl])) as [number, number];
    } catch {
      throw new ApiError(503, 'queue_unavailable', 'the reading queue is unreachable; retry shortly', [], { 'retry-after': '1' });
    }
    const [hits, pttl] = reply;
    const seconds = Math.max(1, Math.ceil(pttl / 1000));
    const blocked = hits > limit;
    return { totalHits: hits, timeToExpire: seconds, isBlocked: blocked, timeToBlockExpire: blocked ? seconds : 0 };
  }
}
