import type { SqlMigration } from '../../sql-migrations.js';
import { createReadings } from './1795258000000-create-readings.js';
import { failedReadingsFailedAtIdx } from './1795258000001-failed-readings-failed-at-idx.js';
import { apiClients } from './1795258000002-api-clients.js';

/** PostgreSQL migrations, applied in this order by runSqlMigrations (npm run migrate). */
export const POSTGRES_MIGRATIONS: readonly SqlMigration[] = [createReadings, failedReadingsFailedAtIdx, apiClients];
