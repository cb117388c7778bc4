import type { DbBackend } from '#libs/config';

/**
 * The tables as the code expects them: every column the statements in sql-dialect.ts write or
 * read, with its type, and the keys and indexes their plans rely on. The migrations of each
 * backend (migrations/postgres/, migrations/cockroach/) must produce exactly this; a test applies
 * them and compares (test/integration/schema.spec.ts; test/cockroach/ on a CockroachDB cluster).
 *
 * Types are in one spelling for both backends, the way information_schema describes them:
 * varchar(n), numeric(p,s), text, text[], uuid, date, timestamptz.
 */
export interface ColumnSpec {
  name: string;
  type: string;
  nullable: boolean;
}

export interface IndexSpec {
  name: string;
  /** Key columns in order, with DESC where the index is descending. */
  columns: string[];
  unique: boolean;
}

export interface TableSpec {
  name: string;
  columns: ColumnSpec[];
  primaryKey: string[];
  /** Secondary indexes (the primary key's own index is not listed). */
  indexes: IndexSpec[];
}

const column = (name: string, type: string, nullable = false): ColumnSpec => ({ name, type, nullable });

export const READINGS_TABLE: TableSpec = {
  name: 'readings',
  columns: [
    // The submission id chosen by the API: a redelivered job maps onto the row it already wrote.
    column('id', 'uuid'),
    column('meter_id', 'varchar(32)'),
    column('account_id', 'varchar(20)', true),
    // First day of the billing month in the configured time zone.
    column('period', 'date'),
    column('read_at', 'timestamptz'),
    column('t1', 'numeric(12,3)'),
    column('t2', 'numeric(12,3)', true),
    column('t3', 'numeric(12,3)', true),
    column('source', 'varchar(16)', true),
    column('flags', 'text[]'),
    column('received_at', 'timestamptz'),
    column('stored_at', 'timestamptz'),
    column('request_id', 'varchar(128)', true),
    // The client that submitted it (api_clients.id): what read:own may see. Null on rows stored
    // before clients existed, which only read:all sees.
    column('client_id', 'uuid', true),
  ],
  primaryKey: ['id'],
  // A meter's readings by period, newest first within it (meterReadings, previousReadings).
  indexes: [{ name: 'readings_meter_period_idx', columns: ['meter_id', 'period', 'received_at', 'id'], unique: false }],
};

/**
 * A reading the database refused, with its reason, so it stays visible and can be replayed.
 * Text columns on purpose: the payload may hold exactly the bytes the readings table rejected.
 */
export const FAILED_READINGS_TABLE: TableSpec = {
  name: 'failed_readings',
  columns: [column('id', 'text'), column('meter_id', 'text', true), column('payload', 'text'), column('reason', 'text'), column('sqlstate', 'varchar(5)', true), column('failed_at', 'timestamptz')],
  primaryKey: ['id'],
  // The runbook's "latest failures" query.
  indexes: [{ name: 'failed_readings_failed_at_idx', columns: ['failed_at DESC'], unique: false }],
};

/** Clients and their keys (api-client-store.ts): the key only as its SHA-256, never the key itself. */
export const API_CLIENTS_TABLE: TableSpec = {
  name: 'api_clients',
  columns: [
    column('id', 'uuid'),
    column('name', 'varchar(64)'),
    column('key_hash', 'varchar(64)'),
    // The key's first characters, so a listing can tell keys apart without holding them.
    column('key_prefix', 'varchar(16)'),
    column('scopes', 'text[]'),
    column('rate_limit', 'integer', true),
    column('created_at', 'timestamptz'),
    column('revoked_at', 'timestamptz', true),
    column('last_used_at', 'timestamptz', true),
  ],
  primaryKey: ['id'],
  // The API's lookup by hash; names are how operators revoke.
  indexes: [
    { name: 'api_clients_key_hash_idx', columns: ['key_hash'], unique: true },
    { name: 'api_clients_name_idx', columns: ['name'], unique: true },
  ],
};

export const SCHEMA: readonly TableSpec[] = [READINGS_TABLE, FAILED_READINGS_TABLE, API_CLIENTS_TABLE];

/** Bookkeeping tables of the migration runner (sql-migrations.ts): present, not compared. */
export const MIGRATION_TABLES = ['schema_migrations', 'schema_migration_lock'];

/** Anything that runs a query and returns its rows (a pg Client or Pool, a TypeORM DataSource's query). */
export type RowQuery = (text: string, values?: unknown[]) => Promise<Record<string, unknown>[]>;

/**
 * The tables of the current schema as the database describes them, in TableSpec form.
 * information_schema for columns and keys (both backends implement it); pg_catalog for index
 * keys and their order. CockroachDB lists a hash-sharded index's hidden shard column
 * (crdb_internal_…_shard_N) among the columns and as the index's first key: that is how USING
 * HASH is stored, and is left out. (The CockroachDB side has not run on a real cluster yet: no
 * binary on the machine this was written on.)
 */
export async function readSchema(query: RowQuery, backend: DbBackend, tables: readonly string[] = SCHEMA.map((t) => t.name)): Promise<TableSpec[]> {
  const columns = await query(
    `SELECT table_name, column_name, data_type, udt_name, character_maximum_length, numeric_precision, numeric_scale, is_nullable
       FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
      ORDER BY table_name, ordinal_position`,
    [tables],
  );
  const keys = await query(
    `SELECT tc.table_name, kcu.column_name
       FROM information_schema.table_constraints tc
       JOIN information_schema.key_column_usage kcu
         ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name
      WHERE tc.table_schema = current_schema() AND tc.table_name = ANY($1::text[]) AND tc.constraint_type = 'PRIMARY KEY'
      ORDER BY tc.table_name, kcu.ordinal_position`,
    [tables],
  );
  const indexes = await query(
    `SELECT t.relname AS table_name, i.relname AS index_name, ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
            k.n AS position, a.attname AS column_name, (ix.indoption[k.n - 1] & 1) = 1 AS descending
       FROM pg_index ix
       JOIN pg_class t ON t.oid = ix.indrelid
       JOIN pg_class i ON i.oid = ix.indexrelid
       JOIN pg_namespace ns ON ns.oid = t.relnamespace
       CROSS JOIN LATERAL generate_series(1, ix.indnkeyatts) AS k(n)
       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ix.indkey[k.n - 1]
      WHERE ns.nspname = current_schema() AND t.relname = ANY($1::text[])
      ORDER BY t.relname, i.relname, k.n`,
    [tables],
  );
  return tables.map((name) => {
    const indexRows = indexes.filter((r) => r.table_name === name && r.is_primary !== true && !(backend === 'cockroach' && String(r.column_name).startsWith('crdb_internal_')));
    const names = [...new Set(indexRows.map((r) => String(r.index_name)))];
    return {
      name,
      // CockroachDB also lists the hidden column a hash-sharded index adds (crdb_internal_…_shard_N).
      columns: columns
        .filter((c) => c.table_name === name && !(backend === 'cockroach' && String(c.column_name).startsWith('crdb_internal_')))
        .map((c) => ({ name: String(c.column_name), type: columnType(c), nullable: c.is_nullable === 'YES' })),
      primaryKey: keys.filter((k) => k.table_name === name).map((k) => String(k.column_name)),
      indexes: names.map((index) => {
        const rows = indexRows.filter((r) => r.index_name === index);
        return { name: index, columns: rows.map((r) => `${String(r.column_name)}${r.descending === true ? ' DESC' : ''}`), unique: rows[0]!.is_unique === true };
      }),
    };
  });
}

/** information_schema's description of a column in the one spelling of ColumnSpec.type. */
function columnType(c: Record<string, unknown>): string {
  // information_schema's numbers arrive as numbers or strings depending on the driver's parsing.
  const num = (v: unknown) => (typeof v === 'number' || typeof v === 'string' ? Number(v) : undefined);
  const [length, precision, scale] = [num(c.character_maximum_length), num(c.numeric_precision), num(c.numeric_scale)];
  const dataType = String(c.data_type);
  if (dataType === 'ARRAY') return `${String(c.udt_name).replace(/^_/, '')}[]`;
  if (dataType === 'character varying') return length === undefined ? 'varchar' : `varchar(${length})`;
  if (dataType === 'numeric') return precision === undefined ? 'numeric' : `numeric(${precision},${scale ?? 0})`;
  if (dataType === 'timestamp with time zone') return 'timestamptz';
  return dataType;
}

/** Every difference between two schemas, one line each (an empty list when they match). */
export function schemaDifferences(expected: readonly TableSpec[], actual: readonly TableSpec[]): string[] {
  const out: string[] = [];
  for (const want of expected) {
    const got = actual.find((t) => t.name === want.name);
    if (!got || got.columns.length === 0) {
      out.push(`table ${want.name}: missing`);
      continue;
    }
    for (const c of want.columns) {
      const g = got.columns.find((x) => x.name === c.name);
      if (!g) out.push(`${want.name}.${c.name}: missing`);
      else if (g.type !== c.type || g.nullable !== c.nullable) out.push(`${want.name}.${c.name}: expected ${c.type}${c.nullable ? ' NULL' : ' NOT NULL'}, found ${g.type}${g.nullable ? ' NULL' : ' NOT NULL'}`);
    }
    for (const g of got.columns) if (!want.columns.some((c) => c.name === g.name)) out.push(`${want.name}.${g.name}: not expected by the code`);
    if (want.primaryKey.join(',') !== got.primaryKey.join(',')) out.push(`${want.name}: primary key (${want.primaryKey.join(', ')}) expected, found (${got.primaryKey.join(', ')})`);
    for (const i of want.indexes) {
      const g = got.indexes.find((x) => x.name === i.name);
      if (!g) out.push(`${want.name}: index ${i.name} missing`);
      else if (g.columns.join(',') !== i.columns.join(',') || g.unique !== i.unique) out.push(`${want.name}: index ${i.name} expected (${i.columns.join(', ')})${i.unique ? ' unique' : ''}, found (${g.columns.join(', ')})${g.unique ? ' unique' : ''}`);
    }
    for (const g of got.indexes) if (!want.indexes.some((i) => i.name === g.name)) out.push(`${want.name}: index ${g.name} not expected by the code`);
  }
  return out;
}
