import { DataSource } from 'typeorm';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '#libs/config';
import { buildDataSourceOptions } from './data-source.options.js';

const cockroach = loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: 'postgresql://root@127.0.0.1:26257/meter_intake?sslmode=disable' }).db;
const postgres = loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/meter_intake', DATABASE_REPLICA_URL: 'postgres://postgres@127.0.0.1:5433/meter_intake' }).db;

describe('buildDataSourceOptions', () => {
  it('uses TypeORM\'s cockroachdb driver for CockroachDB, with its automatic replay off and no TypeORM migrations', () => {
    const options = buildDataSourceOptions(cockroach, 'test', () => undefined);
    expect(options).toMatchObject({ type: 'cockroachdb', url: cockroach.url, maxTransactionRetries: 0, timeTravelQueries: false, synchronize: false, migrationsRun: false });
    expect(options.migrations).toBeUndefined();
    expect(options).not.toHaveProperty('replication');
  });

  it('keeps the PostgreSQL options: a replica pool, no TypeORM migrations (our runner applies migrations/postgres/)', () => {
    const options = buildDataSourceOptions(postgres, 'test', () => undefined);
    expect(options).toMatchObject({ type: 'postgres', synchronize: false, migrationsRun: false, replication: { master: { url: postgres.url }, slaves: [{ url: postgres.replicaUrl }] } });
    expect(options.migrations).toBeUndefined();
  });

  it('sets the same pool bounds and timeouts for both backends; CockroachDB also hands node-postgres the whole URL (sslmode and the like)', () => {
    const a = buildDataSourceOptions(cockroach, 'app', () => undefined) as { extra: Record<string, unknown> };
    const b = buildDataSourceOptions(postgres, 'app', () => undefined) as { extra: Record<string, unknown> };
    const { connectionString, ...rest } = a.extra;
    expect(connectionString).toBe(cockroach.url);
    expect(rest).toEqual(b.extra);
    expect(b.extra).not.toHaveProperty('connectionString');
    expect(a.extra).toMatchObject({ statement_timeout: 10_000, query_timeout: 12_000, application_name: 'app' });
  });

  it.each([cockroach, postgres].map((db) => [db.backend, db] as const))('%s: TypeORM describes no tables (the one description is schema.ts)', async (_backend, db) => {
    const ds = new DataSource(buildDataSourceOptions(db, 'test', () => undefined));
    await (ds as unknown as { buildMetadatas(): Promise<void> }).buildMetadatas();
    expect(ds.entityMetadatas).toEqual([]);
  });
});
