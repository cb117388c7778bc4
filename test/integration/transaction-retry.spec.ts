import { randomUUID } from 'node:crypto';
import type { QueryRunner } from 'typeorm';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BatchWriter } from '../../apps/writer/src/batch/batch-writer.js';
import { loadConfig } from '#libs/config';
import {
  buildDataSourceOptions,
  inTransaction,
  type QueryRunnerSource,
  ReadingStore,
  type RetryNotice,
  TransactionRetriesExhaustedError,
} from '#libs/database';
import { createLogger, createRegistry, writerMetrics } from '#libs/observability';
import { rowsByIds, withDb } from '../support/db.js';
import { queuedReading, testRunPrefix } from '../support/readings-factory.js';

/**
 * The client-side transaction retry loop (libs/database/src/transaction-retry.ts) against real
 * PostgreSQL. No CockroachDB binary can be installed on this machine; PostgreSQL at SERIALIZABLE
 * produces the same SQLSTATE 40001 for genuinely conflicting transactions, so the loop is tested
 * on real conflicts here. 40003 (CockroachDB's "result is ambiguous") cannot be produced by
 * PostgreSQL; it is injected by a wrapper around the pool.
 */
const stack = inject('stack');
const logger = createLogger('test', 'silent');
let dataSource: DataSource;

const fast = { policy: { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 50 } };

beforeAll(async () => {
  const config = loadConfig({ DATABASE_URL: stack.databaseUrl, DB_POOL_SIZE: '8', DB_CONNECT_TIMEOUT_MS: '2000', DB_STATEMENT_TIMEOUT_MS: '5000' });
  dataSource = new DataSource(buildDataSourceOptions(config.db, 'retry-integration-test', () => undefined));
  await dataSource.initialize();
  await dataSource.query(`CREATE TABLE IF NOT EXISTS retry_probe (grp text NOT NULL, id text PRIMARY KEY, seen int NOT NULL)`);
  await dataSource.query(`CREATE INDEX IF NOT EXISTS retry_probe_grp ON retry_probe (grp)`);
});

afterAll(async () => {
  await dataSource?.query(`DROP TABLE IF EXISTS retry_probe`).catch(() => undefined);
  await dataSource?.destroy();
});

/** Resolves once `parties` callers have arrived: holds both transactions between their read and their write. */
function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    arrived++;
    if (arrived === parties) open();
    return opened;
  };
}

/**
 * Write skew, the textbook SERIALIZABLE conflict: each transaction counts the group's rows, then
 * inserts a row recording what it saw. Run concurrently (both reads before either write), no
 * serial order explains both seeing 0, so PostgreSQL aborts one with 40001.
 */
function countThenInsert(grp: string, id: string, wait: () => Promise<void>, attempts: Map<string, number>) {
  return async (runner: QueryRunner, attempt: number) => {
    attempts.set(id, attempt);
    const [{ n }] = (await runner.query(`SELECT count(*)::int AS n FROM retry_probe WHERE grp = $1`, [grp])) as [{ n: number }];
    if (attempt === 1) await wait();
    await runner.query(`INSERT INTO retry_probe (grp, id, seen) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, [grp, id, n]);
    return n;
  };
}

/** Wraps the pool so that one COMMIT succeeds on the server and then reports 40003 to the client: the ambiguous commit. */
function ambiguousCommitOnce(source: DataSource): QueryRunnerSource & { injected: number } {
  const wrapper = {
    injected: 0,
    createQueryRunner(mode?: 'master' | 'slave'): QueryRunner {
      const runner = source.createQueryRunner(mode);
      const query = runner.query.bind(runner) as (sql: string, params?: unknown[]) => Promise<unknown>;
      runner.query = (async (sql: string, params?: unknown[]) => {
        const result = await query(sql, params);
        if (sql === 'COMMIT' && wrapper.injected === 0) {
          wrapper.injected++;
          throw Object.assign(new Error('result is ambiguous (error=rpc error: code = Unavailable)'), { code: '40003' });
        }
        return result;
      }) as QueryRunner['query'];
      return runner;
    },
  };
  return wrapper;
}

describe('transaction retry loop against PostgreSQL', () => {
  it('retries a genuine 40001 (write skew at SERIALIZABLE): both transactions end committed, in a serial order', async () => {
    const grp = testRunPrefix('skew');
    const wait = barrier(2);
    const attempts = new Map<string, number>();
    const notices: RetryNotice[] = [];
    const options = { ...fast, isolation: 'SERIALIZABLE' as const, onRetry: (n: RetryNotice) => notices.push(n) };
    const [a, b] = await Promise.all([
      inTransaction(dataSource, countThenInsert(grp, `${grp}-a`, wait, attempts), options),
      inTransaction(dataSource, countThenInsert(grp, `${grp}-b`, wait, attempts), options),
    ]);

    // A real serialization failure was raised by PostgreSQL and handled by running the loser again.
    expect(notices.length).toBeGreaterThanOrEqual(1);
    expect(notices.every((n) => n.code === '40001')).toBe(true);
    expect(Math.max(...attempts.values())).toBeGreaterThanOrEqual(2);
    expect(Math.min(...attempts.values())).toBe(1);
    // Serializable outcome: the re-run saw the winner's row.
    expect([a, b].sort()).toEqual([0, 1]);
    const rows = await withDb(stack.databaseUrl, async (c) => (await c.query(`SELECT id, seen FROM retry_probe WHERE grp = $1 ORDER BY seen`, [grp])).rows);
    expect(rows.map((r: { seen: number }) => r.seen)).toEqual([0, 1]);
  });

  it('without the loop, the same conflict fails one transaction with 40001 (the negative control)', async () => {
    const grp = testRunPrefix('skew-noretry');
    const wait = barrier(2);
    const attempts = new Map<string, number>();
    const once = { policy: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, isolation: 'SERIALIZABLE' as const };
    const results = await Promise.allSettled([
      inTransaction(dataSource, countThenInsert(grp, `${grp}-a`, wait, attempts), once),
      inTransaction(dataSource, countThenInsert(grp, `${grp}-b`, wait, attempts), once),
    ]);
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed).toHaveLength(1);
    const err = (failed[0] as PromiseRejectedResult).reason as TransactionRetriesExhaustedError;
    expect(err).toBeInstanceOf(TransactionRetriesExhaustedError);
    expect(err.sqlstate).toBe('40001');
    expect(err.message).toMatch(/^transaction gave up after 1 attempt: SQLSTATE 40001: could not serialize access/);
  });

  it('re-runs the transaction after an injected 40003 on a COMMIT that did happen: exactly one row', async () => {
    const source = ambiguousCommitOnce(dataSource);
    const id = `${testRunPrefix('ambiguous')}-row`;
    const notices: RetryNotice[] = [];
    let runs = 0;
    const inserted = await inTransaction(
      source,
      async (runner) => {
        runs++;
        const rows = (await runner.query(`INSERT INTO retry_probe (grp, id, seen) VALUES ('ambiguous', $1, 1) ON CONFLICT (id) DO NOTHING RETURNING id`, [id])) as unknown[];
        return rows.length;
      },
      { ...fast, onRetry: (n) => notices.push(n) },
    );
    expect(source.injected).toBe(1);
    expect(runs).toBe(2);
    expect(notices.map((n) => n.code)).toEqual(['40003']);
    // The second run found the row the "ambiguous" first commit had stored, and inserted nothing.
    expect(inserted).toBe(0);
    const count = await withDb(stack.databaseUrl, async (c) => (await c.query(`SELECT count(*)::int AS n FROM retry_probe WHERE id = $1`, [id])).rows[0].n);
    expect(count).toBe(1);
  });

  it('is bounded: a conflict that never clears gives up after maxAttempts with a visible error, nothing committed', async () => {
    const id = `${testRunPrefix('bounded')}-row`;
    let runs = 0;
    const failure = inTransaction(
      dataSource,
      async (runner) => {
        runs++;
        await runner.query(`INSERT INTO retry_probe (grp, id, seen) VALUES ('bounded', $1, $2) ON CONFLICT (id) DO NOTHING`, [id, runs]);
        throw Object.assign(new Error('restart transaction: TransactionRetryWithProtoRefreshError: injected'), { code: '40001' });
      },
      { policy: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 } },
    );
    await expect(failure).rejects.toThrow('transaction gave up after 4 attempts: SQLSTATE 40001: restart transaction');
    expect(runs).toBe(4);
    const count = await withDb(stack.databaseUrl, async (c) => (await c.query(`SELECT count(*)::int AS n FROM retry_probe WHERE id = $1`, [id])).rows[0].n);
    expect(count).toBe(0);
  });
});

describe('the batch writer uses the retry loop', () => {
  it('stores every reading exactly once when its COMMIT reports 40003 after succeeding', async () => {
    const source = ambiguousCommitOnce(dataSource);
    const metrics = writerMetrics(createRegistry('writer-test'));
    const writer = new BatchWriter(new ReadingStore(source, { backend: 'postgres', replica: false }), { spikeKwhPerDay: 500, retryMaxMs: 5_000, txRetry: fast.policy }, logger, metrics);
    const meter = testRunPrefix('w40003');
    const batch = Array.from({ length: 25 }, (_, i) => queuedReading(`${meter}-${i}`, 100 + i));
    const outcome = await writer.write(batch);
    expect(source.injected).toBe(1);
    expect(outcome.failed).toEqual([]);
    expect(outcome.stored.map((s) => s.id).sort()).toEqual(batch.map((r) => r.id).sort());
    const rows = await rowsByIds(stack.databaseUrl, batch.map((r) => r.id));
    expect(rows.size).toBe(25);
    expect([...rows.values()].every((r) => r.length === 1)).toBe(true);
    expect((await metrics.transactionRetries.get()).values).toEqual([expect.objectContaining({ labels: { code: '40003' }, value: 1 })]);
  });

  it('keeps concurrent SERIALIZABLE batches on the same meters correct: every reading stored exactly once', async () => {
    const metrics = writerMetrics(createRegistry('writer-test'));
    const writer = new BatchWriter(
      new ReadingStore(dataSource, { backend: 'postgres', replica: false }),
      { spikeKwhPerDay: 500, retryMaxMs: 10_000, txRetry: { maxAttempts: 30, baseDelayMs: 2, maxDelayMs: 50 }, isolation: 'SERIALIZABLE' },
      logger,
      metrics,
    );
    const meter = testRunPrefix('wskew');
    const meters = Array.from({ length: 5 }, (_, i) => `${meter}-${i}`);
    // Two writers at once, each batch reading every meter's previous period and writing a new one.
    const batches = Array.from({ length: 8 }, (_, b) =>
      meters.map((m) => queuedReading(m, 1_000 + b, { period: `2001-${String(b + 1).padStart(2, '0')}`, readAt: new Date(Date.UTC(2001, b, 10)).toISOString(), id: randomUUID() })),
    );
    const outcomes = await Promise.all(batches.map((batch) => writer.write(batch)));
    expect(outcomes.every((o) => o.failed.length === 0)).toBe(true);
    const ids = batches.flat().map((r) => r.id);
    const rows = await rowsByIds(stack.databaseUrl, ids);
    expect(rows.size).toBe(ids.length);
    expect([...rows.values()].every((r) => r.length === 1)).toBe(true);
    expect([...rows.values()].every((r) => r[0]!.flags.length === 0)).toBe(true);
    // Whether these runs collide is up to the scheduler (the write-skew test above forces one);
    // the count is logged for the record, the assertions above hold either way.
    const retries = (await metrics.transactionRetries.get()).values.reduce((sum, v) => sum + v.value, 0);
    console.log(`concurrent SERIALIZABLE batches: ${retries} transaction retries`);
  });
});
