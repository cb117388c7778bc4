import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { invalidReading, postJson, validReading } from '../support/ledger.js';
import { rowsByIds, withDb } from '../support/db.js';
import { type AppProcess, startApi } from '../support/processes.js';
import { testRunPrefix } from '../support/readings-factory.js';

// INTAKE_MODE=noop and =naive exist for `npm run bench` (the HTTP ceiling and the design this
// service replaces). They must do what the benchmark says they do, or its ratios mean nothing.
const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'mi-e2e-modes-'));
const started: AppProcess[] = [];
const baseEnv = { DATABASE_URL: stack.databaseUrl, DATABASE_REPLICA_URL: stack.replicaUrl, REDIS_URL: stack.redisUrl, RATE_LIMIT: '1000000' };

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

describe('INTAKE_MODE=naive', () => {
  it('stores each reading before answering 201, with the same flags the writer would set, and still validates', async () => {
    const api = await startApi({ ...baseEnv, INTAKE_MODE: 'naive', REDIS_PREFIX: 'naive-mode' }, dir, 'api-naive');
    started.push(api);
    const prefix = testRunPrefix('naive');
    const first = validReading(prefix, 1);
    const res = await postJson(`${api.url}/v1/readings`, first);
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ status: 'stored', meterId: first.meterId, flags: [] });
    // No writer runs here: the row exists only because the request inserted it.
    const rows = await rowsByIds(stack.databaseUrl, [res.json.id]);
    expect(rows.get(res.json.id)).toHaveLength(1);

    // A lower value a month later on the same meter is flagged as a regression, as the writer does.
    const previousMonth = { ...first, readAt: new Date(Date.parse(first.readAt) - 35 * 86_400_000).toISOString(), values: { t1: first.values.t1 + 500 } };
    await withDb(stack.databaseUrl, (c) => c.query(`UPDATE readings SET period = date_trunc('month', $2::timestamptz - interval '35 days')::date, read_at = $2::timestamptz - interval '35 days', t1 = $3 WHERE id = $1`, [res.json.id, first.readAt, previousMonth.values.t1]));
    const second = await postJson(`${api.url}/v1/readings`, { ...first, readAt: new Date(Date.now() - 30_000).toISOString() });
    expect(second.status).toBe(201);
    expect(second.json.flags).toContain('regression');

    const bad = await postJson(`${api.url}/v1/readings`, invalidReading(prefix, 2));
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
    expect((await postJson(`${api.url}/v1/readings/batch`, { readings: [first] })).status).toBe(501);
  });
});

describe('INTAKE_MODE=noop', () => {
  it('answers 202 without queueing or storing anything', async () => {
    const api = await startApi({ ...baseEnv, INTAKE_MODE: 'noop', REDIS_PREFIX: 'noop-mode' }, dir, 'api-noop');
    started.push(api);
    const res = await postJson(`${api.url}/v1/readings`, validReading(testRunPrefix('noop'), 1));
    expect(res.status).toBe(202);
    expect((await rowsByIds(stack.databaseUrl, [res.json.id])).size).toBe(0);
    // No writer runs in this file, so "not stored" alone would hold for a queued reading too: no
    // job, marker or key record is in Redis either.
    const redis = new Redis(stack.redisUrl);
    try {
      expect(await redis.keys('noop-mode:*')).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
