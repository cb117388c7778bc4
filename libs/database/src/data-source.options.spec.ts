import { DataSource } from 'typeorm';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/src/index.js';
import { buildDataSourceOptions } from './data-source.options.js';

const cockroach = loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: 'postgresql://root@127.0.0.1:26257/meter_intake?sslmode=disable' }).db;
const postgres = loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/meter_intake', DATABASE_REPLICA_URL: 'postgres://postgres@127.0.0.1:5433/meter_intake' }).db;

describe('buildDataSourceOptions', () => {
  it('uses TypeORM\'s cockroachdb driver for CockroachDB, with its automatic replay off and no TypeORM migrations', () => {
    const options = buildDataSourceOptions(cockroach, 'test', () => undefined);
    expect(options).toMatchObject({ type: 'cockroachdb', url: cockroach.url, maxTransactionRetries: 0, timeTravelQueries: false, migrations: [], synchronize: false });
    expect(options).not.toHaveProperty('replication');
  });

  it('keeps the PostgreSQL options: replica pool, TypeORM migrations, advisory-locked runs', () => {
    const options = buildDataSourceOptions(postgres, 'test', () => undefined);
    expect(options).toMatchObject({ type: 'postgres', migrationsTableName: 'typeorm_migrations', replication: { master: { url: postgres.url }, slaves: [{ url: postgres.replicaUrl }] } });
    expect((options.migrations as unknown[]).length).toBe(1);
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

  it('builds entity metadata the cockroachdb driver accepts (column types checked without a server)', async () => {
    const ds = new DataSource(buildDataSourceOptions(cockroach, 'test', () => undefined));
    await (ds as unknown as { buildMetadatas(): Promise<void> }).buildMetadatas();
    expect(ds.entityMetadatas.map((m) => m.tableName).sort()).toEqual(['failed_readings', 'readings']);
  });
});
