import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../../scripts/lib/stack.mjs';
import { withDb } from '../support/db.js';
import { getJson, Ledger, postJson, validReading, verifyLedger } from '../support/ledger.js';
import { type AppProcess, startApi, startWriter } from '../support/processes.js';
import { withQueue } from '../support/queue.js';
import { queuedReading, testRunPrefix } from '../support/readings-factory.js';

const stack = inject('stack');
const logDir = mkdtempSync(join(tmpdir(), 'mi-e2e-crash-'));
const env = {
  DATABASE_URL: stack.databaseUrl,
  DATABASE_REPLICA_URL: stack.replicaUrl,
  REDIS_URL: stack.redisUrl,
  REDIS_PREFIX: `crash-${Date.now()}`,
  RATE_LIMIT: '1000000',
  // Short locks so the stalled jobs of a killed writer come back within seconds, not 30 s.
  WRITER_LOCK_DURATION_MS: '3000',
  WRITER_STALLED_INTERVAL_MS: '1000',
  DB_STATEMENT_TIMEOUT_MS: '2500',
};
let api: AppProcess;
const writers: AppProcess[] = [];

beforeAll(async () => {
  api = await startApi(env, logDir);
});

afterAll(async () => {
  await Promise.all(writers.map((w) => w.stop()));
  await api?.stop();
});

describe('a writer killed mid-batch', () => {
  it('SIGKILL before COMMIT: another writer redoes the stalled jobs; nothing lost, nothing duplicated', async () => {
    const prefix = testRunPrefix('crash');
    const first = await startWriter(env, logDir, 'writer-1');
    writers.push(first);

    // Hold the table so the writer's batch blocks inside its transaction: the kill then lands
    // between the INSERT and the COMMIT, deterministically.
    const blocker = new pg.Client({ connectionString: stack.databaseUrl });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE readings IN ACCESS EXCLUSIVE MODE');
    const ledger = new Ledger();
    try {
      for (let b = 0; b < 5; b++) {
        const bodies = Array.from({ length: 100 }, (_, j) => validReading(prefix, b * 100 + j));
        const res = await postJson(`${api.url}/v1/readings/batch`, { readings: bodies });
        expect(res.status).toBe(202);
        expect(res.json.accepted).toHaveLength(100);
        for (const a of res.json.accepted as { index: number; id: string }[]) {
          ledger.record({ body: bodies[a.index], valid: true, outcome: 'acknowledged', status: 202, id: a.id });
        }
      }
      await waitFor(
        'the writer to be blocked inside its batch transaction',
        async () =>
          withDb(stack.databaseUrl, async (c) => {
            const { rows } = await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'meter-intake-writer' AND wait_event_type = 'Lock'`);
            return rows[0].n > 0;
          }),
        20_000,
      );
      first.child.kill('SIGKILL');
      await first.exited;
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    const before = await withDb(stack.databaseUrl, async (c) => (await c.query('SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1', [`${prefix}-%`])).rows[0].n);
    expect(before).toBe(0);

    writers.push(await startWriter(env, logDir, 'writer-2'));
    const v = await verifyLedger(stack.databaseUrl, ledger, prefix, 60_000);
    expect(v.acknowledged).toBe(500);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.valueMismatch).toEqual([]);
    expect(v.unexpectedRows).toBe(0);
  });
});

describe('writer shutdown and visible failures', () => {
  it('SIGTERM drains: buffered readings are written before the writer exits, without waiting out the linger', async () => {
    const prefix = testRunPrefix('drain');
    // Only the writer under test may take the job.
    await Promise.all(writers.splice(0).map((w) => w.stop()));
    const lingering = await startWriter({ ...env, WRITER_LINGER_MS: '10000', WRITER_BATCH_SIZE: '5000' }, logDir, 'writer-drain');
    const ledger = new Ledger();
    const bodies = Array.from({ length: 200 }, (_, i) => validReading(prefix, i));
    const res = await postJson(`${api.url}/v1/readings/batch`, { readings: bodies });
    expect(res.status).toBe(202);
    for (const a of res.json.accepted as { index: number; id: string }[]) ledger.record({ body: bodies[a.index], valid: true, outcome: 'acknowledged', status: 202, id: a.id });
    await withQueue(stack.redisUrl, env.REDIS_PREFIX, async (queue) => {
      await waitFor('the job to be taken by the writer', async () => (await queue.counts()).active === 1, 10_000);
      const started = Date.now();
      lingering.child.kill('SIGTERM');
      // A clean stop ends with exit code 0 (process.exit after the shutdown hooks, so the log is flushed).
      expect(await lingering.exited).toBe(0);
      expect(readFileSync(lingering.logFile, 'utf8')).toContain('"msg":"drained"');
      expect(Date.now() - started).toBeLessThan(5_000);
      // Committed and acknowledged before the exit: nothing left for another writer to redo.
      expect(await queue.counts()).toEqual({ waiting: 0, active: 0, failed: 0 });
    });
    const v = await verifyLedger(stack.databaseUrl, ledger, prefix, 0);
    expect(v.lost).toEqual([]);
    expect(v.stored).toBe(200);
  });

  it('a reading the database refuses ends as failed with its reason, visible through the API; its batch-mates are stored', async () => {
    writers.push(await startWriter(env, logDir, 'writer-poison'));
    const prefix = testRunPrefix('poison');
    const good = queuedReading(`${prefix}-ok`, 5);
    // Validation would refuse this; a job written by another producer (or an older API) might not.
    const bad = queuedReading(`${prefix}-nul\u0000`, 6);
    await withQueue(stack.redisUrl, env.REDIS_PREFIX, (queue) => queue.enqueue([good, bad].map((reading) => ({ reading, fingerprint: '' })), 60));
    await waitFor('both readings to be settled', async () => (await getJson(`${api.url}/v1/readings/${bad.id}`)).json?.status === 'failed', 20_000);
    const failed = await getJson(`${api.url}/v1/readings/${bad.id}`);
    expect(failed.json).toMatchObject({ id: bad.id, status: 'failed', values: { t1: 6 } });
    expect(failed.json.reason).toContain('0x00');
    const stored = await getJson(`${api.url}/v1/readings/${good.id}`);
    expect(stored.json).toMatchObject({ id: good.id, status: 'stored', values: { t1: 5 } });
  });
});
