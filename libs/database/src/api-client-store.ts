import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * What a client may do. `submit`: POST single readings and batches. `read:own`: the readings
 * (and meter history) this client submitted. `read:all`: every reading (operators). `admin`:
 * operations on the service itself (replay and client management over the API, when built).
 */
export const CLIENT_SCOPES = ['submit', 'read:own', 'read:all', 'admin'] as const;
export type ClientScope = (typeof CLIENT_SCOPES)[number];

export function isClientScope(s: string): s is ClientScope {
  return (CLIENT_SCOPES as readonly string[]).includes(s);
}

/** A client as the API needs it on every request. */
export interface ApiClient {
  id: string;
  name: string;
  scopes: ClientScope[];
  /** Requests per rate-limit window for this client; null: the service's RATE_LIMIT. */
  rateLimit: number | null;
}

/** A client as `npm run clients -- list` shows it: never the key, only its first characters. */
export interface ApiClientListing extends ApiClient {
  keyPrefix: string;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/**
 * Keys are `mik_` and 43 base64url characters: 32 random bytes (256 bits). The prefix makes a
 * leaked key recognisable to secret scanners and to people; the fixed shape lets the API turn
 * away anything else without a lookup.
 */
export const API_KEY_PATTERN = /^mik_[A-Za-z0-9_-]{43}$/;

export function generateApiKey(): string {
  return `mik_${randomBytes(32).toString('base64url')}`;
}

/**
 * SHA-256, not a password hash: the key has 256 random bits, so there is nothing for a slow
 * hash to protect against, and the lookup stays one indexed equality on the hash.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Equal hashes, compared in constant time (a lookup by hash already found the row; this keeps the final comparison timing-flat too). */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** The characters of a key shown in listings and logs: enough to tell keys apart, useless to an attacker. */
export function keyPrefixOf(key: string): string {
  return key.slice(0, 12);
}

/** Anything that runs one statement and returns its rows: a pg Pool, a TypeORM DataSource. */
export interface RowsQueryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

interface ClientRow {
  id: string;
  name: string;
  key_hash: string;
  key_prefix: string;
  scopes: string[];
  rate_limit: number | null;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

/**
 * The rows of a statement, whoever ran it: a pg Pool answers `{ rows }`; TypeORM's query answers
 * the rows of a SELECT or INSERT … RETURNING, but `[rows, count]` for UPDATE and DELETE.
 */
async function rows(db: RowsQueryable, text: string, values: unknown[] = []): Promise<ClientRow[]> {
  const result = await db.query(text, values);
  if (!Array.isArray(result)) return (result as { rows: ClientRow[] }).rows;
  if (result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') return result[0] as ClientRow[];
  return result as ClientRow[];
}

function toClient(r: ClientRow): ApiClient {
  return { id: r.id, name: r.name, scopes: r.scopes.filter(isClientScope), rateLimit: r.rate_limit === null ? null : Number(r.rate_limit) };
}

const COLUMNS = 'id::text AS id, name, key_hash, key_prefix, scopes, rate_limit, created_at, revoked_at, last_used_at';

/**
 * The clients aggregate's one door to the database (`api_clients`): the same SQL on PostgreSQL
 * and CockroachDB (text[] is STRING[] there), always on the primary, since a revocation must be
 * seen at once.
 */
export class ApiClientStore {
  constructor(private readonly db: RowsQueryable) {}

  /** Creates a client and returns its key, which is stored nowhere: it is shown once. */
  async create(input: { name: string; scopes: ClientScope[]; rateLimit?: number | null; key?: string }): Promise<{ client: ApiClient; key: string }> {
    const key = input.key ?? generateApiKey();
    if (!API_KEY_PATTERN.test(key)) throw new Error('a key must be mik_ followed by 43 base64url characters (32 random bytes)');
    const [row] = await rows(
      this.db,
      `INSERT INTO api_clients (name, key_hash, key_prefix, scopes, rate_limit) VALUES ($1, $2, $3, $4::text[], $5) RETURNING ${COLUMNS}`,
      [input.name, hashApiKey(key), keyPrefixOf(key), input.scopes, input.rateLimit ?? null],
    );
    return { client: toClient(row!), key };
  }

  /** The active client with this key hash, or undefined (never issued, or revoked). */
  async findActiveByHash(keyHash: string): Promise<ApiClient | undefined> {
    const [row] = await rows(this.db, `SELECT ${COLUMNS} FROM api_clients WHERE key_hash = $1 AND revoked_at IS NULL`, [keyHash]);
    return row && sameHash(row.key_hash, keyHash) ? toClient(row) : undefined;
  }

  /** The active clients among these key hashes, by hash: one query for every key a replica knows. */
  async findActiveByHashes(keyHashes: readonly string[]): Promise<Map<string, ApiClient>> {
    const found = await rows(this.db, `SELECT ${COLUMNS} FROM api_clients WHERE key_hash = ANY($1::text[]) AND revoked_at IS NULL`, [keyHashes]);
    return new Map(found.map((r) => [r.key_hash, toClient(r)]));
  }

  async list(): Promise<ApiClientListing[]> {
    const all = await rows(this.db, `SELECT ${COLUMNS} FROM api_clients ORDER BY created_at, name`);
    return all.map((r) => ({ ...toClient(r), keyPrefix: r.key_prefix, createdAt: r.created_at, revokedAt: r.revoked_at, lastUsedAt: r.last_used_at }));
  }

  /** Revokes by name or id; returns how many clients it revoked (0 or 1). */
  async revoke(nameOrId: string): Promise<number> {
    const byId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(nameOrId);
    const revoked = await rows(
      this.db,
      `UPDATE api_clients SET revoked_at = now() WHERE ${byId ? 'id = $1::uuid' : 'name = $1'} AND revoked_at IS NULL RETURNING ${COLUMNS}`,
      [nameOrId],
    );
    return revoked.length;
  }

  /** Records use, for many clients in one statement (the API batches it; best effort). */
  async touch(clientIds: readonly string[]): Promise<void> {
    if (clientIds.length === 0) return;
    await this.db.query(`UPDATE api_clients SET last_used_at = now() WHERE id = ANY($1::uuid[])`, [clientIds]);
  }
}
