import { describe, expect, it } from 'vitest';
import type { QueuedReading } from '#libs/readings';
import { waitingIds } from './queue.constants.js';

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
