import type { SqlMigration } from '../../sql-migrations.js';

/**
 * The CockroachDB schema: the tables of schema.ts, as the PostgreSQL migrations
 * (migrations/postgres/) make them, written for CockroachDB:
 * - one DDL per statement, and the runner runs each statement as its own implicit transaction:
 *   CockroachDB does not make schema changes atomic inside an explicit transaction, and an error
 *   in an asynchronous schema change could surface only at COMMIT (typeorm#8474);
 * - every statement idempotent (IF NOT EXISTS), so a run interrupted between a statement and its
 *   bookkeeping row, or a statement retried after 40003 ("result is ambiguous"), is harmless;
 * - random keys: the reading id is a random (v4) or name-based (v5, SHA-256 derived) UUID chosen
 *   by the API, so inserts spread over all ranges instead of piling onto the last one;
 *   gen_random_uuid() is the default for rows inserted by hand;
 * - the secondary index leads with meter_id, which does not grow with time, so it needs no hash
 *   sharding. The one index on a value that only grows (failed_readings.failed_at, for the
 *   runbook's "latest failures" query) is hash-sharded (USING HASH), so its inserts do not all
 *   land on one range.
 */
export const createReadings: SqlMigration = {
  name: '1795258000000-create-readings',
  statements: [
    `CREATE TABLE IF NOT EXISTS readings (
      id UUID NOT NULL DEFAULT gen_random_uuid(),
      meter_id VARCHAR(32) NOT NULL,
      account_id VARCHAR(20),
      period DATE NOT NULL,
      read_at TIMESTAMPTZ NOT NULL,
      t1 DECIMAL(12,3) NOT NULL,
      t2 DECIMAL(12,3),
      t3 DECIMAL(12,3),
      source VARCHAR(16),
      flags STRING[] NOT NULL DEFAULT ARRAY[]::STRING[],
      received_at TIMESTAMPTZ NOT NULL,
      stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      request_id VARCHAR(128),
      CONSTRAINT readings_pkey PRIMARY KEY (id)
    )`,
    `CREATE INDEX IF NOT EXISTS readings_meter_period_idx ON readings (meter_id, period, received_at, id)`,
    `CREATE TABLE IF NOT EXISTS failed_readings (
      id STRING NOT NULL,
      meter_id STRING,
      payload STRING NOT NULL,
      reason STRING NOT NULL,
      sqlstate VARCHAR(5),
      failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      CONSTRAINT failed_readings_pkey PRIMARY KEY (id)
    )`,
    `CREATE INDEX IF NOT EXISTS failed_readings_failed_at_idx ON failed_readings (failed_at DESC) USING HASH`,
  ],
};
