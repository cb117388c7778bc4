import { randomUUID } from 'node:crypto';
import type { QueuedReading } from '#libs/readings';
import { billingPeriod } from '#libs/readings';

/** A unique prefix per test so its meters and rows never mix with another test's. */
export function testRunPrefix(name: string): string {
  return `${name}-${randomUUID().slice(0, 8)}`;
}

export function isoMinutesAgo(minutes: number): string {
  return new Date(Date.now() - minutes * 60_000).toISOString();
}

/** A reading as the writer receives it from the queue. */
export function queuedReading(meterId: string, t1: number, overrides: Partial<QueuedReading> = {}): QueuedReading {
  const readAt = overrides.readAt ?? isoMinutesAgo(1);
  return {
    id: randomUUID(),
    meterId,
    readAt,
    values: { t1 },
    period: billingPeriod(readAt, 'Europe/Moscow'),
    receivedAt: new Date().toISOString(),
    ...overrides,
  };
}
