import type { SqlMigration } from '../../sql-migrations.js';

/**
 * Clients and their keys, and the submitter of each reading: the tables of schema.ts as the
 * PostgreSQL migration of the same name makes them, one idempotent DDL per statement (see
 * 1795258000000-create-readings.ts for why). The key hash is random, so its unique index needs
 * no hash sharding; `client_id` is added as a nullable column, which CockroachDB does online.
 */
export const apiClients: SqlMigration = {
  name: '1795258000002-api-clients',
  statements: [
    `CREATE TABLE IF NOT EXISTS api_clients (
      id UUID NOT NULL DEFAULT gen_random_uuid(),
      name VARCHAR(64) NOT NULL,
      key_hash VARCHAR(64) NOT NULL,
      key_prefix VARCHAR(16) NOT NULL,
      scopes STRING[] NOT NULL,
      rate_limit INT4,
      created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      revoked_at TIMESTAMPTZ,
      last_used_at TIMESTAMPTZ,
      CONSTRAINT api_clients_pkey PRIMARY KEY (id)
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS api_clients_key_hash_idx ON api_clients (key_hash)`,
    `CREATE UNIQUE INDEX IF NOT EXISTS api_clients_name_idx ON api_clients (name)`,
    `ALTER TABLE readings ADD COLUMN IF NOT EXISTS client_id UUID`,
  ],
};
