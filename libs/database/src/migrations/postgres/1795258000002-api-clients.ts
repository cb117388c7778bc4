import type { SqlMigration } from '../../sql-migrations.js';

/**
 * Clients and their keys (issue 13): one row per client, the key only as its SHA-256; and on
 * each reading, the client that submitted it, for object-level access. `client_id` is nullable:
 * rows stored before this migration have no submitter and are visible to `read:all` only.
 */
export const apiClients: SqlMigration = {
  name: '1795258000002-api-clients',
  statements: [
    `CREATE TABLE IF NOT EXISTS api_clients (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name varchar(64) NOT NULL,
      key_hash varchar(64) NOT NULL,
      key_prefix varchar(16) NOT NULL,
      scopes text[] NOT NULL,
      rate_limit integer,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz,
      last_used_at timestamptz
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS api_clients_key_hash_idx ON api_clients (key_hash)`,
    `CREATE UNIQUE INDEX IF NOT EXISTS api_clients_name_idx ON api_clients (name)`,
    `ALTER TABLE readings ADD COLUMN IF NOT EXISTS client_id uuid`,
  ],
};
