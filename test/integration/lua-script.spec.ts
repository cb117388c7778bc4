import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { LuaScript } from '#libs/queue';

const stack = inject('stack');
const redis = new Redis(stack.redisUrl);

afterAll(async () => {
  await redis.quit();
});

describe('LuaScript against Redis', () => {
  const script = new LuaScript(`return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}`);
  const key = `lua-script-test:${Date.now()}`;

  it('runs a script Redis has never seen (EVALSHA, then EVAL), and by SHA alone after that', async () => {
    await redis.script('FLUSH');
    expect(await redis.script('EXISTS', script.sha)).toEqual([0]);
    expect(await script.run(redis, [key], ['a'])).toEqual([key, 'a', 1]);
    expect(await redis.script('EXISTS', script.sha)).toEqual([1]);
    const before = Number(/cmdstat_eval:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
    expect(await script.run(redis, [key], ['b'])).toEqual([key, 'b', 2]);
    const after = Number(/cmdstat_eval:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
    expect(after).toBe(before);
  });

  it('passes script errors through', async () => {
    await expect(new LuaScript(`return redis.call('NOSUCHCOMMAND')`).run(redis, [], [])).rejects.toThrow(/Unknown Redis command|unknown command/i);
  });
});
