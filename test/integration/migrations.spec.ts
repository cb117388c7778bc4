import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '#libs/database';
import { withDb } from '../support/db.js';

const run = promisify(execFile);
const stack = inject('stack');

describe('migrations', () => {
  it('are safe when several replicas start at once: all succeed, each migration applied once', async () => {
    const name = `migrate_race_${Date.now()}`;
    await withDb(stack.databaseUrl, (c) => c.query(`CREATE DATABASE ${name}`));
    const url = stack.databaseUrl.replace(/\/meter_intake$/, `/${name}`);
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => run(process.execPath, ['dist/libs/database/src/migrate.main.js'], { env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'info' } })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(4).fill('fulfilled'));
    const applied = results.map((r) => (r.status === 'fulfilled' ? r.value.stdout : '')).filter((out) => out.includes('"migrations applied"'));
    expect(applied).toHaveLength(1);
    const rows = await withDb(url, async (c) => (await c.query('SELECT name FROM schema_migrations ORDER BY name')).rows);
    expect(rows).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ name: m.name })));
    const tables = await withDb(url, async (c) => (await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).rows.map((r) => r.tablename));
    expect(tables).toEqual(['api_clients', 'failed_readings', 'readings', 'schema_migration_lock', 'schema_migrations']);
  });

  it('refuses to start on a bad configuration value, naming it', async () => {
    const err = await run(process.execPath, ['dist/libs/database/src/migrate.main.js'], { env: { ...process.env, DATABASE_URL: stack.databaseUrl, DB_POOL_SIZE: 'lots', DB_BACKEND: 'oracle' } }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(78);
    expect((err as { stderr: string }).stderr).toContain('DB_POOL_SIZE');
    expect((err as { stderr: string }).stderr).toContain('DB_BACKEND');
  });
});
