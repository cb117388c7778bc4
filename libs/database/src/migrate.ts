import { DataSource } from 'typeorm';
import type { AppConfig } from '../../config/src/index.js';
import type { Logger } from '../../observability/src/index.js';
import { assertBackendAt } from './backend-check.js';
import { buildDataSourceOptions } from './data-source.options.js';
import { COCKROACH_MIGRATIONS } from './migrations/cockroach/index.js';
import { runSqlMigrations } from './sql-migrations.js';
import { dialectFor } from './sql-dialect.js';

/** The database named in a connection URL, when it is a plain identifier we can create safely. */
export function databaseNameOf(url: string): string | undefined {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : undefined;
}

/**
 * Applies pending migrations for the configured backend, with the same `npm run migrate`.
 *
 * PostgreSQL: TypeORM migrations (libs/database/src/migrations/*.ts), each in its own
 * transaction, under a session-level advisory lock: several replicas starting at once queue on
 * it, and each one after the first finds nothing left to do.
 *
 * CockroachDB: the SQL set in migrations/cockroach/, one idempotent DDL per statement, run by
 * runSqlMigrations under a lease row (no advisory locks there), recorded in schema_migrations.
 */
export async function runMigrations(db: AppConfig['db'], logger: Logger): Promise<string[]> {
  const version = await assertBackendAt(db.url, db.backend, db.connectTimeoutMs);
  const dataSource = new DataSource(buildDataSourceOptions({ ...db, replicaUrl: undefined, poolSize: 2 }, 'meter-intake-migrate', (err) => logger.warn({ err }, 'migration pool error')));
  await dataSource.initialize();
  try {
    if (db.backend === 'cockroach') {
      const database = databaseNameOf(db.url);
      // A fresh cluster has only defaultdb; CockroachDB accepts a connection naming a database that does not exist yet.
      if (database) await dataSource.query(`CREATE DATABASE IF NOT EXISTS ${database}`);
      const names = await runSqlMigrations(dataSource, { migrations: COCKROACH_MIGRATIONS, logger });
      logger.info({ backend: db.backend, version, applied: names }, names.length ? 'migrations applied' : 'schema up to date');
      return names;
    }
    return await runTypeormMigrations(dataSource, db, logger, version);
  } finally {
    await dataSource.destroy();
  }
}

async function runTypeormMigrations(dataSource: DataSource, db: AppConfig['db'], logger: Logger, version: string): Promise<string[]> {
  const lock = dialectFor(db.backend).migrationLock;
  const runner = dataSource.createQueryRunner('master');
  try {
    await runner.connect();
    if (lock) await runner.query(lock.lock);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    if (lock) await runner.query(lock.unlock);
    const names = applied.map((m) => m.name);
    logger.info({ backend: db.backend, version, applied: names }, names.length ? 'migrations applied' : 'schema up to date');
    return names;
  } finally {
    await runner.release();
  }
}
