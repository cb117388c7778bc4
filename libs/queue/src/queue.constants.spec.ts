import { describe, expect, it } from 'vitest';
import { redisKeys, retryDelayMs } from './queue.constants.js';

describe('redisKeys', () => {
  it('names the idempotency record and the marker by the reading id packed to 22 base64url characters, one per id', () => {
    const keys = redisKeys('mi');
    const a = keys.idempotency('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6a');
    expect(a).toMatch(/^\{mi\}i:[A-Za-z0-9_-]{22}$/);
    // 28 characters: the allocation class the records are sized by (165 bytes each, not 181).
    expect(a).toHaveLength(28);
    expect(Buffer.from(a.slice('{mi}i:'.length), 'base64url').toString('hex')).toBe('3f0e2b9c5d0a4c8e9a570c7d2f1e4b6a');
    expect(keys.idempotency('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6b')).not.toBe(a);
    expect(keys.pending('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6a')).toBe(a.replace('}i:', '}p:'));
    expect(keys.readingKeys('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6a')).toEqual({ pending: a.replace('}i:', '}p:'), idempotency: a });
  });

  it('puts every key a queue script touches under one hash tag, so the scripts run on Redis Cluster', () => {
    const id = '3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6a';
    const tagsOf = (keys: ReturnType<typeof redisKeys>) => new Set([keys.stream, keys.failed, keys.failedAt, keys.pending(id), keys.idempotency(id)].map((k) => /^\{([^}]*)\}/.exec(k)?.[1]));
    expect(tagsOf(redisKeys('mi'))).toEqual(new Set(['mi']));
    expect(tagsOf(redisKeys('mi', 'shard-3'))).toEqual(new Set(['mi.shard-3']));
  });
});

describe('retryDelayMs', () => {
  it('doubles from one second and stops growing', () => {
    expect([1, 2, 3, 10].map(retryDelayMs)).toEqual([1_000, 2_000, 4_000, 512_000]);
    expect(retryDelayMs(1_000)).toBe(retryDelayMs(21));
  });
});
