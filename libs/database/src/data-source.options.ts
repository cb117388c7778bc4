import type { DataSourceOptions } from 'typeorm';
import type { AppConfig } from '../../config/src/index.js';
import { FailedReadingEntity } from './entities/failed-reading.entity.js';
import { ReadingEntity } from './entities/reading.entity.js';
import { CreateReadings1795258000000 } from './migrations/1795258000000-CreateReadings.js';

export const ENTITIES = [ReadingEntity, FailedReadingEntity];
export const MIGRATIONS = [CreateReadings1795258000000];

/**
 * The one DataSource definition, used by the API, the writer and the migration command.
 * Pool bounded, connect and statement timeouts set: a stalled database must surface as an
 * error the writer can retry, never as a request or a job lock held forever.
 */
export function buildDataSourceOptions(
  db: AppConfig['db'],
  applicationName: string,
  onPoolError: (err: unknown) => void,
): DataSourceOptions {
  if (db.backend !== 'postgres') {
    throw new Error(`DB_BACKEND=${db.backend} is not supported by this build yet; use DB_BACKEND=postgres`);
  }
  const extra = {
    max: db.poolSize,
    connectionTimeoutMillis: db.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: db.statementTimeoutMs,
    // Guards against a COMMIT whose reply never arrives (a cut connection): the client gives up
    // and the writer retries, which is safe because the write is idempotent.
    query_timeout: db.statementTimeoutMs + 2_000,
    application_name: applicationName,
    keepAlive: true,
  };
  return {
    type: 'postgres',
    ...(db.replicaUrl ? { replication: { master: { url: db.url }, slaves: [{ url: db.replicaUrl }] } } : { url: db.url }),
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'typeorm_migrations',
    migrationsRun: false,
    synchronize: false,
    installExtensions: false,
    connectTimeoutMS: db.connectTimeoutMs,
    poolSize: db.poolSize,
    extra,
    poolErrorHandler: onPoolError,
    // Errors are logged by the callers as JSON lines, with context; TypeORM's own logger would print raw SQL and parameters.
    logging: false,
  };
}
