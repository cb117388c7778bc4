import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { readSchema, SCHEMA, schemaDifferences } from '#libs/database';
import { withDb } from '../support/db.js';

const run = promisify(execFile);
const stack = inject('stack');

/** A new, empty database on the test server; its URL. */
async function freshDatabase(prefix: string): Promise<string> {
  const name = `${prefix}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await withDb(stack.databaseUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  return stack.databaseUrl.replace(/\/meter_intake$/, `/${name}`);
}

const migrate = (url: string) => run(process.execPath, ['dist/libs/database/src/migrate.main.js'], { env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'info' } });
const schemaAt = (url: string) => withDb(url, (c) => readSchema(async (text, values) => (await c.query(text, values)).rows as Record<string, unknown>[], 'postgres'));

describe('the PostgreSQL schema', () => {
  it('the migrations produce exactly the tables, columns, types, keys and indexes the code expects (schema.ts)', async () => {
    const url = await freshDatabase('schema');
    await migrate(url);
    expect(schemaDifferences(SCHEMA, await schemaAt(url))).toEqual([]);
  });

  it('a drift is reported: a missing index, a changed type, an extra column', async () => {
    const url = await freshDatabase('schema_drift');
    await migrate(url);
    await withDb(url, async (c) => {
      await c.query('DROP INDEX failed_readings_failed_at_idx');
      await c.query('ALTER TABLE readings ALTER COLUMN source TYPE varchar(32)');
      await c.query('ALTER TABLE readings ADD COLUMN note text');
    });
    expect(schemaDifferences(SCHEMA, await schemaAt(url))).toEqual([
      'readings.source: expected varchar(16) NULL, found varchar(32) NULL',
      'readings.note: not expected by the code',
      'failed_readings: index failed_readings_failed_at_idx missing',
    ]);
  });

  it('a database made by the earlier TypeORM migration is brought to the same schema, its rows kept', async () => {
    const url = await freshDatabase('schema_upgrade');
    // What CreateReadings1795258000000 (the TypeORM migration, up to 2026-12) created.
    await withDb(url, async (c) => {
      await c.query(`CREATE TABLE readings (id uuid PRIMARY KEY, meter_id varchar(32) NOT NULL, account_id varchar(20), period date NOT NULL,
        read_at timestamptz NOT NULL, t1 numeric(12,3) NOT NULL, t2 numeric(12,3), t3 numeric(12,3), source varchar(16),
        flags text[] NOT NULL DEFAULT '{}', received_at timestamptz NOT NULL, stored_at timestamptz NOT NULL DEFAULT now(), request_id varchar(128))`);
      await c.query('CREATE INDEX readings_meter_period_idx ON readings (meter_id, period, received_at, id)');
      await c.query(`CREATE TABLE failed_readings (id text PRIMARY KEY, meter_id text, payload text NOT NULL, reason text NOT NULL,
        sqlstate varchar(5), failed_at timestamptz NOT NULL DEFAULT now())`);
      await c.query('CREATE TABLE typeorm_migrations (id serial PRIMARY KEY, "timestamp" bigint NOT NULL, name varchar NOT NULL)');
      await c.query(`INSERT INTO typeorm_migrations ("timestamp", name) VALUES (1795258000000, 'CreateReadings1795258000000')`);
      await c.query(`INSERT INTO readings (id, meter_id, period, read_at, t1, received_at) VALUES ('0a6b1a56-3a3c-4d1e-8f5e-4c1c8d1d2a11', 'UPGRADE-1', '2026-11-01', now(), 1.5, now())`);
    });
    await migrate(url);
    expect(schemaDifferences(SCHEMA, await schemaAt(url))).toEqual([]);
    const kept = await withDb(url, async (c) => (await c.query(`SELECT meter_id, t1::text FROM readings`)).rows);
    expect(kept).toEqual([{ meter_id: 'UPGRADE-1', t1: '1.500' }]);
  });
});
