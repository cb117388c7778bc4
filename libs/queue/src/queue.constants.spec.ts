import { describe, expect, it } from 'vitest';
import type { QueuedReading } from '#libs/readings';
import { redisKeys, waitingIds } from './queue.constants.js';

const reading = (id: string, extra: Record<string, unknown> = {}) => ({ id, meterId: 'M', period: '2026-11', readAt: '2026-11-20T00:00:00Z', receivedAt: '2026-11-20T00:00:01Z', values: { t1: 1 }, ...extra }) as QueuedReading;

describe('waitingIds', () => {
  it('reads the ids listed beside the readings', () => {
    expect(waitingIds({ readings: [reading('a'), reading('b')], notify: ['b'] })).toEqual(['b']);
  });

  it('reads a job queued before that (notify inside each reading), and a job with no waiting client', () => {
    expect(waitingIds({ readings: [reading('a', { notify: true }), reading('b')] })).toEqual(['a']);
    expect(waitingIds({ readings: [reading('a')] })).toEqual([]);
  });
});

describe('redisKeys.idempotency', () => {
  it('names the record by the reading id packed to 22 base64url characters, one per id', () => {
    const keys = redisKeys('mi');
    const a = keys.idempotency('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6a');
    expect(a).toMatch(/^mi:i:[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(a.slice(5), 'base64url').toString('hex')).toBe('3f0e2b9c5d0a4c8e9a570c7d2f1e4b6a');
    expect(keys.idempotency('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6b')).not.toBe(a);
  });
});
