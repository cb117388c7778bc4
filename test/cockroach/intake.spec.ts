import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { QueryRunner } from 'typeorm';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BatchWriter } from '../../apps/writer/src/batch/batch-writer.js';
import { loadConfig } from '#libs/config';
import { buildDataSourceOptions, COCKROACH_MIGRATIONS, inTransaction, ReadingStore, readSchema, type RetryNotice, SCHEMA, schemaDifferences, TransactionRetriesExhaustedError } from '#libs/database';
import { createLogger, createRegistry, writerMetrics } from '#libs/observability';
import { waitFor } from '../../scripts/lib/stack.mjs';
import { rowsByIds, withDb } from '../support/db.js';
import { expectMixedIntakeStoredOnce, sendMixedIntake } from '../support/intake-scenario.js';
import { getJson, postJson } from '../support/ledger.js';
import { type AppProcess, startApi, startWriter } from '../support/processes.js';
import { queuedReading, testRunPrefix } from '../support/readings-factory.js';

/**
 * The end-to-end intake test against CockroachDB, plus what only CockroachDB can show: follower
 * reads, real SERIALIZABLE conflicts and injected retry errors through the client-side retry
 * loop, the migration set, and a node lost under load. Runs when COCKROACH_URL or a cockroach
 * binary is available (test/cockroach/global-setup.ts); otherwise every test here is reported
 * as skipped and the run prints "CockroachDB suite: NOT RUN (…)".
 */
const run = promisify(execFile);
const suite = inject('cockroach');
const crdb = suite.available ? suite : undefined;
const logger = createLogger('test', 'silent');

describe.skipIf(!crdb)('CockroachDB end to end (DB_BACKEND=cockroach)', () => {
  let logDir: string;
  let api: AppProcess;
  let writer: AppProcess;
  let dataSource: DataSource;
  const url = (i: number) => crdb!.urls[i % crdb!.urls.length]!;
  const env = (nodeUrl: string) => ({
    DB_BACKEND: 'cockroach',
    COCKROACH_URL: nodeUrl,
    DATABASE_URL: '',
    DATABASE_REPLICA_URL: '',
    REDIS_URL: crdb!.redisUrl,
    REDIS_PREFIX: `crdb-${Date.now()}`,
    RATE_LIMIT: '1000000',
    MIGRATE_ON_START: 'false',
    LOG_LEVEL: 'info',
  });

  beforeAll(async () => {
    // Made here, not while collecting: a skipped suite leaves nothing behind.
    logDir = mkdtempSync(join(tmpdir(), 'mi-crdb-e2e-'));
    const shared = env(url(0));
    // Writer on the first node, API on the second: one cluster, different gateways.
    [writer, api] = await Promise.all([startWriter(shared, logDir), startApi({ ...shared, COCKROACH_URL: url(1) }, logDir)]);
    const config = loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: url(0), DB_POOL_SIZE: '8' });
    dataSource = new DataSource(buildDataSourceOptions(config.db, 'crdb-suite', () => undefined));
    await dataSource.initialize();
    await dataSource.query(`CREATE TABLE IF NOT EXISTS retry_probe (grp STRING NOT NULL, id STRING PRIMARY KEY, seen INT NOT NULL)`);
  });

  afterAll(async () => {
    await api?.stop();
    await writer?.stop();
    await dataSource?.destroy();
  });

  it('stores every acknowledged reading exactly once among 2,000 (singles and batches, 5% invalid, 1% resent)', async () => {
    const prefix = testRunPrefix('crdb');
    const total = 2_000;
    const ledger = await sendMixedIntake(api.url, prefix, total);
    await expectMixedIntakeStoredOnce(crdb!.url, ledger, prefix, total);
  });

  it('shows the backend in /health/ready and in the start-up logs of API and writer', async () => {
    const ready = await getJson(`${api.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.json.info.database).toMatchObject({ status: 'up', backend: 'cockroach', staleReads: 'follower-reads' });
    const writerReady = await getJson(`${writer.url}/health/ready`);
    expect(writerReady.json).toMatchObject({ status: 'ok', backend: 'cockroach' });
    const apiLog = readFileSync(api.logFile, 'utf8');
    expect(apiLog).toMatch(/"backend":"cockroach".*"msg":"database connected"|"msg":"database connected".*"backend":"cockroach"/);
    expect(apiLog).toContain('CockroachDB');
    expect(readFileSync(writer.logFile, 'utf8')).toMatch(/"backend":"cockroach".*"serverVersion":"CockroachDB/);
  });

  it('consistency=strong reads a just-stored reading at once; the default follower read is a few seconds behind, then sees it', async () => {
    const meterId = testRunPrefix('crdb-follower');
    const stored = await postJson(`${api.url}/v1/readings?wait=true`, { meterId, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 12.5 } });
    expect(stored.status).toBe(201);
    const strong = await getJson(`${api.url}/v1/meters/${meterId}/readings?consistency=strong`);
    expect(strong.status).toBe(200);
    expect(strong.json.readFrom).toBe('leaseholder');
    expect(strong.headers.get('x-read-from')).toBe('leaseholder');
    expect(strong.json.periods.map((p: { effective: { id: string } }) => p.effective.id)).toEqual([stored.json.id]);
    // follower_read_timestamp() is about 4.8 s in the past: a read right after the commit cannot see it.
    const eventual = await getJson(`${api.url}/v1/meters/${meterId}/readings`);
    expect(eventual.json.readFrom).toBe('follower');
    expect(eventual.json.consistency).toBe('eventual');
    expect(eventual.json.periods).toEqual([]);
    await waitFor('the follower read to include the reading', async () => (await getJson(`${api.url}/v1/meters/${meterId}/readings`)).json.periods.length === 1, 20_000, 500);
    const status = await getJson(`${api.url}/v1/readings/${stored.json.id}`);
    expect(status.json).toMatchObject({ id: stored.json.id, status: 'stored', values: { t1: 12.5 } });
  });

  it('retries a genuine SERIALIZABLE conflict (write skew): both transactions commit, in a serial order', async () => {
    const grp = testRunPrefix('crdb-skew');
    let arrived = 0;
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const notices: RetryNotice[] = [];
    const work = (id: string) => async (runner: QueryRunner, attempt: number) => {
      const [{ n }] = (await runner.query(`SELECT count(*)::INT AS n FROM retry_probe WHERE grp = $1`, [grp])) as [{ n: number }];
      if (attempt === 1 && ++arrived === 2) open();
      if (attempt === 1) await opened;
      await runner.query(`INSERT INTO retry_probe (grp, id, seen) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, [grp, id, n]);
      return Number(n);
    };
    const options = { policy: { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 100 }, onRetry: (n: RetryNotice) => notices.push(n) };
    const results = await Promise.all([inTransaction(dataSource, work(`${grp}-a`), options), inTransaction(dataSource, work(`${grp}-b`), options)]);
    expect(notices.length).toBeGreaterThanOrEqual(1);
    expect(notices.every((n) => n.code === '40001')).toBe(true);
    expect(results.sort()).toEqual([0, 1]);
  });

  it('gives up after maxAttempts when every attempt gets a retry error (inject_retry_errors_enabled), with a visible error', async () => {
    const config = loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: url(0), DB_POOL_SIZE: '2' });
    const options = buildDataSourceOptions(config.db, 'crdb-inject', () => undefined) as { extra: Record<string, unknown> };
    const injecting = new DataSource({ ...(options as object), extra: { ...options.extra, options: '-c inject_retry_errors_enabled=true' } } as never);
    await injecting.initialize();
    try {
      let runs = 0;
      const failure = inTransaction(
        injecting,
        async (runner) => {
          runs++;
          await runner.query(`INSERT INTO retry_probe (grp, id, seen) VALUES ('inject', $1, 1)`, [randomUUID()]);
        },
        { policy: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 10 } },
      );
      const err = (await failure.catch((e: unknown) => e)) as TransactionRetriesExhaustedError;
      expect(err).toBeInstanceOf(TransactionRetriesExhaustedError);
      expect(err.attempts).toBe(3);
      expect(err.sqlstate).toBe('40001');
      expect(err.message).toMatch(/^transaction gave up after 3 attempts: SQLSTATE 40001: /);
      expect(runs).toBe(3);
    } finally {
      await injecting.destroy();
    }
  });

  it('writes concurrent batches for the same meters exactly once through the batch writer at SERIALIZABLE (the default)', async () => {
    const metrics = writerMetrics(createRegistry('crdb-writer-test'));
    const batchWriter = new BatchWriter(new ReadingStore(dataSource, { backend: 'cockroach', replica: false }), { spikeKwhPerDay: 500, retryMaxMs: 10_000, txRetry: { maxAttempts: 30, baseDelayMs: 5, maxDelayMs: 200 } }, logger, metrics);
    const meter = testRunPrefix('crdb-conc');
    const meters = Array.from({ length: 5 }, (_, i) => `${meter}-${i}`);
    const batches = Array.from({ length: 8 }, (_, b) =>
      meters.map((m) => queuedReading(m, 1_000 + b, { period: `2001-${String(b + 1).padStart(2, '0')}`, readAt: new Date(Date.UTC(2001, b, 10)).toISOString(), id: randomUUID() })),
    );
    const outcomes = await Promise.all(batches.map((batch) => batchWriter.write(batch)));
    expect(outcomes.every((o) => o.failed.length === 0)).toBe(true);
    const ids = batches.flat().map((r) => r.id);
    const rows = await rowsByIds(crdb!.url, ids);
    expect(rows.size).toBe(ids.length);
    expect([...rows.values()].every((r) => r.length === 1)).toBe(true);
    const retries = (await metrics.transactionRetries.get()).values.reduce((sum, v) => sum + v.value, 0);
    console.log(`CockroachDB concurrent batches: ${retries} transaction retries`);
  });

  it('isolates a reading CockroachDB refuses (numeric overflow) and commits the rest of its batch', async () => {
    const batchWriter = new BatchWriter(new ReadingStore(dataSource, { backend: 'cockroach', replica: false }), { spikeKwhPerDay: 500, retryMaxMs: 5_000 }, logger);
    const meter = testRunPrefix('crdb-poison');
    const good = Array.from({ length: 5 }, (_, i) => queuedReading(`${meter}-${i}`, i));
    const overflow = queuedReading(`${meter}-big`, 5e12);
    const outcome = await batchWriter.write([...good, overflow]);
    expect(outcome.failed.map((f) => f.id)).toEqual([overflow.id]);
    const rows = await rowsByIds(crdb!.url, [...good, overflow].map((r) => r.id));
    expect(good.every((r) => rows.get(r.id)?.length === 1)).toBe(true);
    expect(rows.has(overflow.id)).toBe(false);
    const failed = await withDb(crdb!.url, async (c) => (await c.query(`SELECT sqlstate FROM failed_readings WHERE id = $1`, [overflow.id])).rows);
    expect(failed).toHaveLength(1);
    expect(String(failed[0].sqlstate)).toMatch(/^22/);
  });

  it('migrations: a second run finds nothing to do, three at once all succeed, the time-ordered index is hash-sharded', async () => {
    const migrate = () =>
      run(process.execPath, ['dist/libs/database/src/migrate.main.js'], { env: { ...process.env, DB_BACKEND: 'cockroach', COCKROACH_URL: url(0), DATABASE_URL: '', DATABASE_REPLICA_URL: '', LOG_LEVEL: 'info' } });
    const again = await migrate();
    expect(again.stdout).toContain('"schema up to date"');
    const results = await Promise.allSettled([migrate(), migrate(), migrate()]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const applied = await withDb(crdb!.url, async (c) => (await c.query(`SELECT name FROM schema_migrations`)).rows.map((r: { name: string }) => r.name));
    expect(applied).toEqual(COCKROACH_MIGRATIONS.map((m) => m.name));
    // The same tables, columns, types, keys and indexes as the code expects (and as PostgreSQL has).
    const actual = await withDb(crdb!.url, (c) => readSchema(async (text, values) => (await c.query(text, values)).rows as Record<string, unknown>[], 'cockroach'));
    expect(schemaDifferences(SCHEMA, actual)).toEqual([]);
    const ddl = await withDb(crdb!.url, async (c) => (await c.query(`SHOW CREATE TABLE failed_readings`)).rows[0].create_statement as string);
    expect(ddl).toMatch(/failed_at[^)]*\)[^,]*USING HASH/);
  });

  it.skipIf(crdb?.source !== 'binary')('keeps taking and storing readings after one of three nodes is killed (SIGKILL)', async () => {
    // The third node serves neither the API nor the writer; with two of three replicas left every range keeps its quorum.
    const pid = Number(readFileSync(join(crdb!.dir, 'cockroach', 'node3', 'cockroach.pid'), 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    const prefix = testRunPrefix('crdb-nodeloss');
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await postJson(`${api.url}/v1/readings`, { meterId: `${prefix}-${i}`, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: i + 1 } });
      expect(res.status).toBe(202);
      ids.push(res.json.id as string);
    }
    await waitFor('every reading stored with a node down', async () => (await rowsByIds(crdb!.url, ids)).size === ids.length, 60_000, 500);
  });
});
