import pg from 'pg';
import type { DbBackend } from '#libs/config';

/** The backend a `SELECT version()` string belongs to: "CockroachDB CCL v25.2.1 (…)" or "PostgreSQL 15.8 on …". */
export function backendOfVersion(version: string): DbBackend {
  return /cockroachdb/i.test(version) ? 'cockroach' : 'postgres';
}

export class BackendMismatchError extends Error {
  override readonly name = 'BackendMismatchError';
  constructor(
    readonly configured: DbBackend,
    readonly version: string,
  ) {
    super(
      `DB_BACKEND=${configured} but the database at the configured URL is ${backendOfVersion(version)} (${version}). ` +
        (configured === 'cockroach' ? 'Point COCKROACH_URL at a CockroachDB node.' : 'Point DATABASE_URL at PostgreSQL, or set DB_BACKEND=cockroach and COCKROACH_URL.'),
    );
  }
}

/** One short-lived plain connection (not the pool): asks the server what it is. */
export async function serverVersionAt(url: string, connectTimeoutMs: number): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs, statement_timeout: connectTimeoutMs });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ version: string }>('SELECT version() AS version');
    return rows[0]?.version ?? '';
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Refuses a URL that points at the other kind of database, before any pool or ORM touches it:
 * the two backends differ in SQL, migrations and read path, and one silently standing in for
 * the other would be worse than a clear stop (the processes exit with 78, like a bad variable).
 * One connection at start-up; returns the server's version for the start-up log.
 */
export async function assertBackendAt(url: string, configured: DbBackend, connectTimeoutMs: number): Promise<string> {
  const version = await serverVersionAt(url, connectTimeoutMs);
  if (backendOfVersion(version) !== configured) throw new BackendMismatchError(configured, version);
  return version;
}
