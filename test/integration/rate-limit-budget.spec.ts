import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RedisThrottlerStorage } from '../../apps/api/src/throttling/redis-throttler.storage.js';

const stack = inject('stack');
const redis = new Redis(stack.redisUrl);
// The storage refuses (503) while its connection is not ready: the tests start once it is.
const ready = (r: Redis) => (r.status === 'ready' ? Promise.resolve() : new Promise<void>((resolve) => r.once('ready', () => resolve())));
beforeAll(() => ready(redis));
afterAll(async () => {
  await redis.quit();
});

const LIMIT = 20;
const WINDOW_MS = 60_000;
// A sync interval far beyond the test: every sync here is one the test makes (flush).
const NEVER = 3_600_000;

function replica(prefix: string): RedisThrottlerStorage {
  return new RedisThrottlerStorage(redis, (key) => `${prefix}:rl:${key}`, NEVER);
}
async function hits(storage: RedisThrottlerStorage, n: number, limit = LIMIT): Promise<number> {
  let accepted = 0;
  for (let i = 0; i < n; i++) if (!(await storage.increment('client', WINDOW_MS, limit, 0, 'default')).isBlocked) accepted++;
  return accepted;
}
const counterOf = async (prefix: string) => Number(await redis.get(`${prefix}:rl:default:client`));

describe('the shared rate-limit budget against Redis', () => {
  it('costs one round trip per window far from the limit, not one per request', async () => {
    const prefix = `rlb-cost-${Date.now()}`;
    // Its own connection, its calls counted: other clients of the shared Redis do not disturb the count.
    const counted = new Redis(stack.redisUrl);
    await ready(counted);
    let calls = 0;
    for (const method of ['evalsha', 'eval'] as const) {
      const original = counted[method].bind(counted) as (...args: unknown[]) => Promise<unknown>;
      (counted as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        calls++;
        return original(...args);
      };
    }
    const a = new RedisThrottlerStorage(counted, (key) => `${prefix}:rl:${key}`, NEVER);
    expect(await hits(a, 100, 1_000)).toBe(100);
    expect(calls).toBeLessThanOrEqual(2); // the window's first hit (EVALSHA, plus EVAL if the script was not cached)
    await a.flush(WINDOW_MS);
    expect(await counterOf(prefix)).toBe(100);
    expect(await redis.pttl(`${prefix}:rl:default:client`)).toBeGreaterThan(WINDOW_MS - 10_000);
    await counted.quit();
  });

  it('is exact on one replica: near the limit every hit is counted in Redis', async () => {
    const prefix = `rlb-one-${Date.now()}`;
    const a = replica(prefix);
    expect(await hits(a, 25)).toBe(LIMIT);
    await a.flush(WINDOW_MS);
    expect(await counterOf(prefix)).toBe(25);
  });

  it('stays exact while a sync is on its way: the hits being sent still count', async () => {
    const prefix = `rlb-flight-${Date.now()}`;
    const a = replica(prefix);
    expect(await hits(a, LIMIT - 1)).toBe(LIMIT - 1);
    const syncing = a.flush(WINDOW_MS); // 18 hits on their way to Redis, the reply not back yet
    expect(await hits(a, 2)).toBe(1); // the 20th passes, the 21st is refused
    await syncing;
    await a.flush(WINDOW_MS);
    expect(Number(await redis.get(`${prefix}:rl:default:client`))).toBe(LIMIT + 1);
  });

  it('starts a replica from what the others counted once they synced: exact across replicas', async () => {
    const prefix = `rlb-two-${Date.now()}`;
    const [a, b] = [replica(prefix), replica(prefix)];
    expect(await hits(a, 12)).toBe(12);
    await a.flush(WINDOW_MS);
    // b's first hit of the window reads the total: 13, so 7 more pass and the rest are refused.
    expect(await hits(b, 12)).toBe(8);
    await b.flush(WINDOW_MS);
    expect(await counterOf(prefix)).toBe(24);
  });

  it('reads the total before deciding when its view is older than syncMs', async () => {
    const prefix = `rlb-stale-${Date.now()}`;
    const [a, b] = [new RedisThrottlerStorage(redis, (key) => `${prefix}:rl:${key}`, 20), replica(prefix)];
    expect(await hits(a, 5)).toBe(5);
    await a.flush(WINDOW_MS);
    expect(await hits(b, 20)).toBe(15);
    await b.flush(WINDOW_MS);
    // a last read the total (5) before b's 20 hits; once that view is older than 20 ms, a's next
    // hit goes to Redis first and is refused.
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(await hits(a, 1)).toBe(0);
  });

  it('lets a client past the limit by at most the hits the other replica had not synced', async () => {
    const prefix = `rlb-tol-${Date.now()}`;
    const [a, b] = [replica(prefix), replica(prefix)];
    expect(await hits(a, 15)).toBe(15);
    const unsyncedOnA = 15 - (await counterOf(prefix));
    const onB = await hits(b, 15);
    expect(15 + onB - LIMIT).toBeLessThanOrEqual(unsyncedOnA);
    // Nothing is lost: after both sync, Redis holds every hit, and both refuse once synced.
    await a.flush(WINDOW_MS);
    await b.flush(WINDOW_MS);
    expect(await counterOf(prefix)).toBe(30);
    expect(await hits(b, 1)).toBe(0);
    await hits(a, 1);
    await a.flush(WINDOW_MS);
    expect(await hits(a, 1)).toBe(0);
  });

  it('two replicas taking turns in one burst: past the limit by at most half of it', async () => {
    const prefix = `rlb-burst-${Date.now()}`;
    const [a, b] = [replica(prefix), replica(prefix)];
    let accepted = 0;
    for (let i = 0; i < 60; i++) accepted += await hits(i % 2 === 0 ? a : b, 1);
    console.log(`two replicas taking turns, 60 hits with no timed sync, limit ${LIMIT}: ${accepted} accepted`);
    // Each replica spends at most half of the budget it last saw before it syncs again; without
    // that rule each would admit the whole limit (40 here).
    expect(accepted).toBeGreaterThanOrEqual(LIMIT);
    expect(accepted).toBeLessThanOrEqual(LIMIT * 1.5);
    await a.flush(WINDOW_MS);
    await b.flush(WINDOW_MS);
    expect(await counterOf(prefix)).toBe(60);
  });

  it('keeps the hits of a failed sync and sends them with the next one', async () => {
    const prefix = `rlb-fail-${Date.now()}`;
    const a = new RedisThrottlerStorage(redis, (key) => `${prefix}:rl:${key}`, NEVER);
    expect(await hits(a, 5, 1_000)).toBe(5);
    // A script Redis refuses (the counter holds a non-number) fails the sync; the hits stay pending.
    await redis.set(`${prefix}:rl:default:client`, 'not a number');
    await a.flush(WINDOW_MS);
    await redis.set(`${prefix}:rl:default:client`, '1', 'PX', WINDOW_MS);
    await a.flush(WINDOW_MS);
    expect(await counterOf(prefix)).toBe(5);
  });
});
