import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '#libs/config';
import { buildDataSourceOptions, runSqlMigrations, type SqlMigration } from '#libs/database';
import { withDb } from '../support/db.js';

/**
 * The SQL migration runner that applies the CockroachDB schema (lease-row lock, one idempotent
 * statement at a time, bookkeeping in schema_migrations). Its SQL is plain enough to run on
 * PostgreSQL, which is how its behaviour is tested on this machine: with a PostgreSQL-flavoured
 * migration set, since the CockroachDB DDL itself (USING HASH, STRING[]) needs CockroachDB.
 */
const run = promisify(execFile);
const stack = inject('stack');
const database = `sql_migrate_${Date.now()}`;
const url = stack.databaseUrl.replace(/\/meter_intake$/, `/${database}`);
const sources: DataSource[] = [];

const MIGRATIONS: SqlMigration[] = [
  {
    name: '0001-things',
    statements: [
      `CREATE TABLE IF NOT EXISTS things (id uuid PRIMARY KEY, label text NOT NULL, made_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE INDEX IF NOT EXISTS things_label_idx ON things (label)`,
    ],
  },
  { name: '0002-things-note', statements: [`ALTER TABLE things ADD COLUMN IF NOT EXISTS note text`] },
];

function captureLogger() {
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
  return { logger, lines };
}

async function openSource(): Promise<DataSource> {
  const config = loadConfig({ DATABASE_URL: url, DB_POOL_SIZE: '2' });
  const ds = new DataSource(buildDataSourceOptions(config.db, 'sql-migrations-test', () => undefined));
  await ds.initialize();
  sources.push(ds);
  return ds;
}

async function applied(): Promise<string[]> {
  return withDb(url, async (c) => (await c.query(`SELECT name FROM schema_migrations ORDER BY name`)).rows.map((r: { name: string }) => r.name));
}

async function resetBookkeeping(): Promise<void> {
  await withDb(url, (c) => c.query(`DROP TABLE IF EXISTS schema_migrations, schema_migration_lock, things`));
}

beforeAll(async () => {
  await withDb(stack.databaseUrl, (c) => c.query(`CREATE DATABASE ${database}`));
});

afterAll(async () => {
  await Promise.all(sources.map((s) => s.destroy().catch(() => undefined)));
  await withDb(stack.databaseUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${database}`)).catch(() => undefined);
});

describe('runSqlMigrations (the CockroachDB migration runner), exercised on PostgreSQL', () => {
  it('applies each migration once when four runners start at once, and releases the lease', async () => {
    await resetBookkeeping();
    const runners = await Promise.all(Array.from({ length: 4 }, () => openSource()));
    const logs = runners.map(() => captureLogger());
    const results = await Promise.allSettled(runners.map((ds, i) => runSqlMigrations(ds, { migrations: MIGRATIONS, logger: logs[i]!.logger, pollMs: 50 })));
    // A rejection shows its reason, not just "rejected".
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.status))).toEqual(Array(4).fill('fulfilled'));
    const appliedBy = results.map((r) => (r.status === 'fulfilled' ? r.value : []));
    // One runner did the work; the others waited for its lease and found nothing left.
    expect(appliedBy.filter((names) => names.length > 0)).toEqual([['0001-things', '0002-things-note']]);
    expect(logs.flatMap((l) => l.lines).filter((l) => l.msg === 'migration applied')).toHaveLength(2);
    expect(await applied()).toEqual(['0001-things', '0002-things-note']);
    const lock = await withDb(url, async (c) => (await c.query(`SELECT count(*)::int AS n FROM schema_migration_lock`)).rows[0].n);
    expect(lock).toBe(0);
    const columns = await withDb(url, async (c) => (await c.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'things' ORDER BY ordinal_position`)).rows.map((r: { column_name: string }) => r.column_name));
    expect(columns).toEqual(['id', 'label', 'made_at', 'note']);
  });

  it('redoes a migration interrupted after its statements ran but before it was recorded, harmlessly (idempotent statements)', async () => {
    await resetBookkeeping();
    // A run that crashed after the first statement: the table exists, nothing is recorded.
    await withDb(url, (c) => c.query(MIGRATIONS[0]!.statements[0]!));
    const ds = await openSource();
    const names = await runSqlMigrations(ds, { migrations: MIGRATIONS, logger: captureLogger().logger });
    expect(names).toEqual(['0001-things', '0002-things-note']);
    expect(await applied()).toEqual(['0001-things', '0002-things-note']);
    // And a second run has nothing to do.
    expect(await runSqlMigrations(ds, { migrations: MIGRATIONS, logger: captureLogger().logger })).toEqual([]);
  });

  it('takes over the lease of a runner that died holding it, once the lease has expired', async () => {
    await resetBookkeeping();
    const ds = await openSource();
    await runSqlMigrations(ds, { migrations: [], logger: captureLogger().logger });
    await withDb(url, (c) => c.query(`INSERT INTO schema_migration_lock (id, holder, expires_at) VALUES (1, 'crashed-runner', now() - interval '1 second')`));
    const started = Date.now();
    expect(await runSqlMigrations(ds, { migrations: MIGRATIONS, logger: captureLogger().logger, pollMs: 50 })).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('waits while another runner holds a live lease, then proceeds once it is released', async () => {
    await resetBookkeeping();
    const ds = await openSource();
    await runSqlMigrations(ds, { migrations: [], logger: captureLogger().logger });
    await withDb(url, (c) => c.query(`INSERT INTO schema_migration_lock (id, holder, expires_at) VALUES (1, 'busy-runner', now() + interval '1 minute')`));
    const { logger, lines } = captureLogger();
    const running = runSqlMigrations(ds, { migrations: MIGRATIONS, logger, pollMs: 50 });
    await sleep(400);
    expect(await withDb(url, async (c) => (await c.query(`SELECT count(*)::int AS n FROM schema_migrations`)).rows[0].n)).toBe(0);
    expect(lines.some((l) => l.msg === 'another process is migrating; waiting for its lease')).toBe(true);
    await withDb(url, (c) => c.query(`DELETE FROM schema_migration_lock WHERE holder = 'busy-runner'`));
    expect(await running).toEqual(['0001-things', '0002-things-note']);
  });

  it('gives up with a clear error when another runner keeps the lease longer than it may wait', async () => {
    await resetBookkeeping();
    const ds = await openSource();
    await runSqlMigrations(ds, { migrations: [], logger: captureLogger().logger });
    await withDb(url, (c) => c.query(`INSERT INTO schema_migration_lock (id, holder, expires_at) VALUES (1, 'stuck-runner', now() + interval '1 minute')`));
    await expect(runSqlMigrations(ds, { migrations: MIGRATIONS, logger: captureLogger().logger, pollMs: 50, waitMs: 300 })).rejects.toThrow(
      /another migration run held schema_migration_lock for more than 300 ms/,
    );
    expect(await applied()).toEqual([]);
  });
});

describe('npm run migrate refuses the wrong kind of database', () => {
  it('exits with 78 and says so when DB_BACKEND=cockroach points at PostgreSQL', async () => {
    const err = (await run(process.execPath, ['dist/libs/database/src/migrate.main.js'], {
      env: { ...process.env, DB_BACKEND: 'cockroach', COCKROACH_URL: stack.databaseUrl, DATABASE_URL: '', LOG_LEVEL: 'info' },
    }).catch((e: unknown) => e)) as { code: number; stdout: string };
    expect(err.code).toBe(78);
    expect(err.stdout).toContain('DB_BACKEND=cockroach but the database at the configured URL is postgres');
    expect(err.stdout).toContain('Point COCKROACH_URL at a CockroachDB node');
  });
});
