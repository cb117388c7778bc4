import type { SqlMigration } from '../../sql-migrations.js';

/**
 * The index behind the runbook's "latest failures" query. CockroachDB had it from its first
 * migration; PostgreSQL did not (the schemas had drifted: the schema test now catches that).
 */
export const failedReadingsFailedAtIdx: SqlMigration = {
  name: '1795258000001-failed-readings-failed-at-idx',
  statements: [`CREATE INDEX IF NOT EXISTS failed_readings_failed_at_idx ON failed_readings (failed_at DESC)`],
};
