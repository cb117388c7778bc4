import type { DataSourceOptions } from 'typeorm';
import type { AppConfig } from '#libs/config';

/**
 * The one DataSource definition, used by the API, the writer and the migration command.
 * Pool bounded, connect and statement timeouts set: a stalled database must surface as an
 * error the writer can retry, never as a request or a job lock held forever.
 *
 * TypeORM is the pool and the query runner (with primary/replica routing on PostgreSQL), nothing
 * more: no entities, no TypeORM migrations. Every statement is ours (sql-dialect.ts), the tables
 * are described once in schema.ts and created by our own migration runner (sql-migrations.ts).
 * On CockroachDB (TypeORM's cockroachdb driver, node-postgres underneath) transactions are opened
 * with plain BEGIN/COMMIT by inTransaction, so the driver's query recording and replay on 40001
 * never engages; it is also switched off with maxTransactionRetries: 0.
 */
export function buildDataSourceOptions(
  db: AppConfig['db'],
  applicationName: string,
  onPoolError: (err: unknown) => void,
): DataSourceOptions {
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
  const common = {
    migrationsRun: false,
    synchronize: false,
    connectTimeoutMS: db.connectTimeoutMs,
    poolSize: db.poolSize,
    extra,
    poolErrorHandler: onPoolError,
    // Errors are logged by the callers as JSON lines, with context; TypeORM's own logger would print raw SQL and parameters.
    logging: false,
  } as const;
  if (db.backend === 'cockroach') {
    return {
      ...common,
      // node-postgres parses the whole URL itself: TypeORM's URL parsing keeps host, port, user
      // and database but drops parameters such as sslmode and sslrootcert, which a secure
      // CockroachDB cluster needs.
      extra: { ...extra, connectionString: db.url },
      type: 'cockroachdb',
      url: db.url,
      // No replication block: CockroachDB's analogue of the read replica is a follower read on this pool.
      timeTravelQueries: false,
      maxTransactionRetries: 0,
    };
  }
  return {
    ...common,
    type: 'postgres',
    ...(db.replicaUrl ? { replication: { master: { url: db.url }, slaves: [{ url: db.replicaUrl }] } } : { url: db.url }),
    installExtensions: false,
  };
}
