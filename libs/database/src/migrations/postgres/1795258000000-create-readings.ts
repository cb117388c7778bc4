import type { SqlMigration } from '../../sql-migrations.js';

/**
 * The PostgreSQL schema (see schema.ts for what each column is for). Until 2026-12 this was a
 * TypeORM migration (CreateReadings1795258000000, recorded in typeorm_migrations); it is the
 * same DDL made idempotent, so on a database created by the old runner it finds every table and
 * index in place, does nothing, and is recorded in schema_migrations.
 */
export const createReadings: SqlMigration = {
  name: '1795258000000-create-readings',
  statements: [
    `CREATE TABLE IF NOT EXISTS readings (
      id uuid PRIMARY KEY,
      meter_id varchar(32) NOT NULL,
      account_id varchar(20),
      period date NOT NULL,
      read_at timestamptz NOT NULL,
      t1 numeric(12,3) NOT NULL,
      t2 numeric(12,3),
      t3 numeric(12,3),
      source varchar(16),
      flags text[] NOT NULL DEFAULT '{}',
      received_at timestamptz NOT NULL,
      stored_at timestamptz NOT NULL DEFAULT now(),
      request_id varchar(128)
    )`,
    `CREATE INDEX IF NOT EXISTS readings_meter_period_idx ON readings (meter_id, period, received_at, id)`,
    `CREATE TABLE IF NOT EXISTS failed_readings (
      id text PRIMARY KEY,
      meter_id text,
      payload text NOT NULL,
      reason text NOT NULL,
      sqlstate varchar(5),
      failed_at timestamptz NOT NULL DEFAULT now()
    )`,
  ],
};
