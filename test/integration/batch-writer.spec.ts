import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BatchWriter } from '../../apps/writer/src/batch/batch-writer.js';
import { loadConfig } from '#libs/config';
import { buildDataSourceOptions, ReadingStore } from '#libs/database';
import { createLogger } from '#libs/observability';
import { rowsByIds, withDb } from '../support/db.js';
import { queuedReading, testRunPrefix } from '../support/readings-factory.js';
import { stackControl } from '../support/stack-control.js';

const stack = inject('stack');
const logger = createLogger('test', 'silent');
let dataSource: DataSource;
let writer: BatchWriter;

beforeAll(async () => {
  const config = loadConfig({ DATABASE_URL: stack.databaseUrl, DB_POOL_SIZE: '4', DB_CONNECT_TIMEOUT_MS: '1000', DB_STATEMENT_TIMEOUT_MS: '5000' });
  dataSource = new DataSource(buildDataSourceOptions(config.db, 'writer-integration-test', () => undefined));
  await dataSource.initialize();
  writer = new BatchWriter(new ReadingStore(dataSource, { backend: 'postgres', replica: false }), { spikeKwhPerDay: 500, retryMaxMs: 60_000, retryBaseMs: 100, retryCapMs: 1_000 }, logger);
});

afterAll(async () => {
  await dataSource?.destroy();
});

describe('BatchWriter against PostgreSQL', () => {
  it('stores a batch with the values sent', async () => {
    const meter = testRunPrefix('batch');
    const batch = Array.from({ length: 50 }, (_, i) => queuedReading(`${meter}-${i}`, 1000 + i + 0.125, { values: { t1: 1000 + i + 0.125, t2: i, t3: 2 * i }, accountId: '12345', source: 'web' }));
    const outcome = await writer.write(batch);
    expect(outcome.failed).toEqual([]);
    expect(outcome.stored.filter((s) => s.storedAt)).toHaveLength(50);
    const rows = await rowsByIds(stack.databaseUrl, batch.map((r) => r.id));
    for (const r of batch) {
      const stored = rows.get(r.id);
      expect(stored).toHaveLength(1);
      expect(Number(stored![0]!.t1)).toBe(r.values.t1);
      expect(Number(stored![0]!.t2)).toBe(r.values.t2);
      expect(Number(stored![0]!.t3)).toBe(r.values.t3);
      expect(stored![0]!.read_at.toISOString()).toBe(r.readAt);
    }
  });

  it('writes 5,000 rows in one batch (array parameters: 13 of them, whatever the size; below the 65,535-parameter limit)', async () => {
    const meter = testRunPrefix('big');
    const batch = Array.from({ length: 5_000 }, (_, i) => queuedReading(`${meter}-${i}`, i, { values: { t1: i, t2: i, t3: i } }));
    const outcome = await writer.write(batch);
    expect(outcome.stored.filter((s) => s.storedAt)).toHaveLength(5_000);
    const count = await withDb(stack.databaseUrl, async (c) => (await c.query(`SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1`, [`${meter}-%`])).rows[0].n);
    expect(count).toBe(5_000);
  });

  it('collapses duplicates inside one batch instead of failing the statement (21000)', async () => {
    const meter = testRunPrefix('dup');
    const a = queuedReading(meter, 10);
    const b = queuedReading(meter, 11);
    const outcome = await writer.write([a, b, { ...a }, { ...b }, { ...a }]);
    expect(outcome.collapsed).toBe(3);
    expect(outcome.failed).toEqual([]);
    const rows = await rowsByIds(stack.databaseUrl, [a.id, b.id]);
    expect(rows.get(a.id)).toHaveLength(1);
    expect(rows.get(b.id)).toHaveLength(1);
  });

  it('makes no second row when the same batch is written again (a redelivered job)', async () => {
    const meter = testRunPrefix('redeliver');
    const batch = Array.from({ length: 20 }, (_, i) => queuedReading(`${meter}-${i}`, i));
    await writer.write(batch);
    const again = await writer.write(batch);
    expect(again.stored).toHaveLength(20);
    expect(again.stored.every((s) => s.storedAt === undefined)).toBe(true);
    const rows = await rowsByIds(stack.databaseUrl, batch.map((r) => r.id));
    expect([...rows.values()].every((r) => r.length === 1)).toBe(true);
    expect(rows.size).toBe(20);
  });

  it('records a resend under a stored id with other values as failed (a key reused after the idempotency window); the stored row keeps its first values', async () => {
    const meter = testRunPrefix('late-conflict');
    const first = queuedReading(meter, 100, { values: { t1: 100, t2: 7 } });
    const bystander = queuedReading(`${meter}-b`, 5);
    await writer.write([first]);
    // The same id (same client and key) with other values, in a batch with a new reading.
    const resend = { ...first, values: { t1: 101, t2: 7 } };
    const outcome = await writer.write([resend, bystander]);
    expect(outcome.failed).toEqual([{ id: first.id, reason: expect.stringMatching(/idempotency key reused with different values/) }]);
    expect(outcome.stored.map((s) => s.id)).toEqual([bystander.id]);
    const rows = await rowsByIds(stack.databaseUrl, [first.id, bystander.id]);
    expect(rows.get(first.id)?.map((r) => Number(r.t1))).toEqual([100]);
    expect(rows.get(bystander.id)).toHaveLength(1);
    const failed = await withDb(stack.databaseUrl, async (c) => (await c.query(`SELECT payload FROM failed_readings WHERE id = $1`, [first.id])).rows as { payload: string }[]);
    expect(failed.map((f) => (JSON.parse(f.payload) as { values: { t1: number } }).values.t1)).toEqual([101]);
    // Another source is another reading too (the key's fingerprint covers it).
    expect((await writer.write([{ ...first, source: 'sms' }])).failed.map((f) => f.id)).toEqual([first.id]);
    // The same values again (a redelivery, an honest resend) are no failure.
    const same = await writer.write([{ ...first }]);
    expect(same.failed).toEqual([]);
    expect(same.stored).toEqual([{ id: first.id, flags: expect.any(Array) }]);
  });

  it('isolates a poison reading: the good rows commit, the bad one is kept in failed_readings with its reason', async () => {
    const meter = testRunPrefix('poison');
    const good = Array.from({ length: 10 }, (_, i) => queuedReading(`${meter}-${i}`, i));
    // Values validation would have refused: the writer must still cope if one slips through.
    const nulByte = queuedReading(`${meter}-nul\u0000x`, 1);
    const overflow = queuedReading(`${meter}-big`, 5e12);
    const outcome = await writer.write([...good.slice(0, 5), nulByte, ...good.slice(5), overflow]);
    expect(outcome.failed.map((f) => f.id).sort()).toEqual([nulByte.id, overflow.id].sort());
    const rows = await rowsByIds(stack.databaseUrl, [...good, nulByte, overflow].map((r) => r.id));
    expect(good.every((r) => rows.get(r.id)?.length === 1)).toBe(true);
    expect(rows.has(nulByte.id)).toBe(false);
    expect(rows.has(overflow.id)).toBe(false);
    const failed = await withDb(stack.databaseUrl, async (c) =>
      (await c.query(`SELECT id, reason, sqlstate, payload FROM failed_readings WHERE id = ANY($1::text[]) ORDER BY id`, [[nulByte.id, overflow.id]])).rows,
    );
    expect(failed).toHaveLength(2);
    const byId = new Map((failed as { id: string; sqlstate: string; payload: string }[]).map((f) => [f.id, f]));
    expect(byId.get(nulByte.id)?.sqlstate).toBe('22021');
    expect((byId.get(nulByte.id) as { reason?: string } | undefined)?.reason).toMatch(/0x00/);
    expect((byId.get(overflow.id) as { reason?: string } | undefined)?.reason).toMatch(/overflow/);
    expect(byId.get(overflow.id)?.sqlstate).toBe('22003');
    expect((JSON.parse(byId.get(overflow.id)!.payload) as { values: { t1: number } }).values.t1).toBe(5e12);
  });

  it('flags regression and spike against the latest reading of an earlier period, and stores the raw values', async () => {
    const meter = testRunPrefix('flags');
    const lastMonth = new Date(Date.now() - 35 * 86_400_000).toISOString();
    const earlier = queuedReading(meter, 1_000, { readAt: lastMonth, period: '2000-01', values: { t1: 1_000, t2: 500 } });
    // Periods are given explicitly so the test does not depend on today's date.
    await writer.write([earlier]);
    const regression = queuedReading(meter, 900, { period: '2000-02', values: { t1: 900, t2: 600 } });
    const spike = queuedReading(`${meter}`, 1_000, { period: '2000-03', values: { t1: 1_000 + 35 * 600, t2: 600 } });
    const normal = queuedReading(`${meter}`, 1_100, { period: '2000-04', values: { t1: 1_100, t2: 520 } });
    const outcome = await writer.write([regression]);
    expect(outcome.stored[0]!.flags).toEqual(['regression']);
    const spikeOutcome = await writer.write([spike]);
    expect(spikeOutcome.stored[0]!.flags).toEqual(['spike']);
    const rows = await rowsByIds(stack.databaseUrl, [regression.id, spike.id]);
    expect(rows.get(regression.id)![0]!.flags).toEqual(['regression']);
    expect(Number(rows.get(regression.id)![0]!.t1)).toBe(900);
    // The latest earlier period is now 2000-03 (t1 = 22,000): 1,100 is a regression against it.
    const normalOutcome = await writer.write([normal]);
    expect(normalOutcome.stored[0]!.flags).toEqual(['regression']);
  });

  it('rides out a PostgreSQL restart: transient errors are retried until the database is back', async () => {
    const { primary, replica } = stackControl();
    const meter = testRunPrefix('restart');
    const batch = Array.from({ length: 100 }, (_, i) => queuedReading(`${meter}-${i}`, i));
    await primary.stop('fast');
    try {
      const writing = writer.write(batch);
      await sleep(2_500);
      await primary.start();
      const outcome = await writing;
      expect(outcome.stored.filter((s) => s.storedAt)).toHaveLength(100);
    } finally {
      await primary.start().catch(() => undefined);
      await replica.start().catch(() => undefined);
    }
    const rows = await rowsByIds(stack.databaseUrl, batch.map((r) => r.id));
    expect(rows.size).toBe(100);
  });
});
