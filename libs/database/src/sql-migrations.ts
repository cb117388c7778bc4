import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '#libs/observability';
import { errorCode, errorMessage } from './db-errors.js';
import { isRetryableTransactionError, type RetryOptions, withRetries } from './transaction-retry.js';

/** A migration as plain SQL: each statement runs on its own (an implicit transaction) and must be idempotent. */
export interface SqlMigration {
  name: string;
  statements: readonly string[];
}

/** Anything that runs one statement on a pooled connection: a TypeORM DataSource, a pg Pool. */
export interface SqlQueryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

export interface SqlMigrationOptions {
  migrations: readonly SqlMigration[];
  logger: Logger;
  /** Bookkeeping tables; defaults suit the application, tests use their own. */
  migrationsTable?: string;
  lockTable?: string;
  /** How long a lease lasts without renewal (renewed every third of it while the run goes on). */
  leaseMs?: number;
  /** How long to wait for another runner's lease before giving up. */
  waitMs?: number;
  pollMs?: number;
  retry?: RetryOptions;
  /** Identifies this runner in the lock row; host, pid and a random part by default. */
  holder?: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/**
 * Two runners creating the same bookkeeping table at the same moment can collide even with
 * IF NOT EXISTS (PostgreSQL: 23505 on its catalog's unique index, or 42710 `type "…" already
 * exists` for the table's row type; CockroachDB: 40001 or 42P07). Running the statement again
 * then finds the table and does nothing.
 */
export function isCreateRace(err: unknown): boolean {
  const code = errorCode(err);
  return isRetryableTransactionError(err) || code === '23505' || code === '42710' || code === '42P07';
}

/**
 * Applies pending SQL migrations once, whatever the number of processes starting at once, on a
 * database without session advisory locks (CockroachDB: its pg_advisory_lock has not been a real
 * lock, and transaction-scoped ones are recent). Serialisation is a lease row:
 *
 * 1. create the bookkeeping tables (IF NOT EXISTS, retried on a create race);
 * 2. take the lease: an INSERT … ON CONFLICT DO UPDATE … WHERE expired-or-mine RETURNING,
 *    which returns a row only to the runner that got it; the others poll;
 * 3. renew it every third of its lifetime while migrations run (a crashed runner's lease expires
 *    and the next runner takes over, redoing at most the migration it was in: every statement is
 *    idempotent);
 * 4. for each migration not yet recorded: each statement on its own, retried on 40001/40003,
 *    then its bookkeeping row;
 * 5. release the lease.
 *
 * Plain SQL that runs on PostgreSQL too, which is how the runner itself is tested on this machine.
 */
export async function runSqlMigrations(db: SqlQueryable, options: SqlMigrationOptions): Promise<string[]> {
  const migrationsTable = options.migrationsTable ?? 'schema_migrations';
  const lockTable = options.lockTable ?? 'schema_migration_lock';
  for (const t of [migrationsTable, lockTable]) if (!IDENTIFIER.test(t)) throw new Error(`not a plain table name: ${t}`);
  const leaseMs = options.leaseMs ?? 5 * 60_000;
  const waitMs = options.waitMs ?? 10 * 60_000;
  const pollMs = options.pollMs ?? 500;
  const holder = options.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const log = options.logger;
  const retry = (fn: () => Promise<unknown>, retryable = isRetryableTransactionError) =>
    withRetries(fn, {
      ...options.retry,
      retryable,
      onRetry: (n) => log.warn({ attempt: n.attempt, code: n.code, delayMs: n.delayMs, err: errorMessage(n.error) }, 'migration statement retried'),
    });
  const lease = `${Math.ceil(leaseMs / 1000)} seconds`;

  await retry(() => db.query(`CREATE TABLE IF NOT EXISTS ${migrationsTable} (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`), isCreateRace);
  await retry(() => db.query(`CREATE TABLE IF NOT EXISTS ${lockTable} (id int PRIMARY KEY, holder text NOT NULL, expires_at timestamptz NOT NULL)`), isCreateRace);

  const acquire = async (): Promise<boolean> => {
    const rows = (await retry(() =>
      db.query(
        `INSERT INTO ${lockTable} (id, holder, expires_at) VALUES (1, $1, now() + $2::interval)
         ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE ${lockTable}.expires_at < now() OR ${lockTable}.holder = excluded.holder
         RETURNING holder`,
        [holder, lease],
      ),
    )) as unknown[];
    return rows.length === 1;
  };
  const deadline = Date.now() + waitMs;
  let waited = false;
  while (!(await acquire())) {
    if (Date.now() > deadline) throw new Error(`another migration run held ${lockTable} for more than ${waitMs} ms; giving up`);
    if (!waited) log.info({ lockTable }, 'another process is migrating; waiting for its lease');
    waited = true;
    await sleep(pollMs);
  }

  let lost = false;
  // Renewal is the same statement: it extends a lease that is still ours, and returns no row
  // once another runner has taken an expired one.
  const renew = setInterval(() => {
    acquire().then(
      (mine) => {
        if (!mine) lost = true;
      },
      (err: unknown) => log.warn({ err: errorMessage(err) }, 'could not renew the migration lease'),
    );
  }, Math.max(1_000, Math.floor(leaseMs / 3)));
  renew.unref();

  const applied: string[] = [];
  try {
    const done = new Set(((await retry(() => db.query(`SELECT name FROM ${migrationsTable}`))) as { name: string }[]).map((r) => r.name));
    for (const migration of options.migrations) {
      if (done.has(migration.name)) continue;
      if (lost) throw new Error(`lost the migration lease (${lockTable}) to another process before ${migration.name}`);
      for (const statement of migration.statements) await retry(() => db.query(statement));
      await retry(() => db.query(`INSERT INTO ${migrationsTable} (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, [migration.name]));
      applied.push(migration.name);
      log.info({ migration: migration.name, statements: migration.statements.length }, 'migration applied');
    }
  } finally {
    clearInterval(renew);
    await retry(() => db.query(`DELETE FROM ${lockTable} WHERE id = 1 AND holder = $1`, [holder])).catch((err: unknown) =>
      log.warn({ err: errorMessage(err) }, 'could not release the migration lease; it expires by itself'),
    );
  }
  return applied;
}
