import { DataSource } from 'typeorm';
import type { AppConfig } from '#libs/config';
import type { Logger } from '#libs/observability';
import { assertBackendAt } from './backend-check.js';
import { buildDataSourceOptions } from './data-source.options.js';
import { COCKROACH_MIGRATIONS } from './migrations/cockroach/index.js';
import { POSTGRES_MIGRATIONS } from './migrations/postgres/index.js';
import { runSqlMigrations, type SqlMigration } from './sql-migrations.js';

const MIGRATIONS: Record<AppConfig['db']['backend'], readonly SqlMigration[]> = { postgres: POSTGRES_MIGRATIONS, cockroach: COCKROACH_MIGRATIONS };

/** The database named in a connection URL, when it is a plain identifier we can create safely. */
export function databaseNameOf(url: string): string | undefined {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : undefined;
}

/**
 * Applies pending migrations for the configured backend: `npm run migrate`, and each replica's
 * start with MIGRATE_ON_START. One runner for both backends (runSqlMigrations: plain,
 * idempotent SQL statements under a lease row, recorded in schema_migrations), one folder of
 * migrations per backend (migrations/postgres/, migrations/cockroach/). Several processes
 * starting at once queue on the lease; each one after the first finds nothing left to do.
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
    }
    const names = await runSqlMigrations(dataSource, { migrations: MIGRATIONS[db.backend], logger });
    logger.info({ backend: db.backend, version, applied: names }, names.length ? 'migrations applied' : 'schema up to date');
    return names;
  } finally {
    await dataSource.destroy();
  }
}
