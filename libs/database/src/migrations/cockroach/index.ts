import type { SqlMigration } from '../../sql-migrations.js';
import { createReadings } from './1795258000000-create-readings.js';
import { apiClients } from './1795258000002-api-clients.js';

/** CockroachDB migrations, applied in this order by runSqlMigrations (npm run migrate with DB_BACKEND=cockroach). */
export const COCKROACH_MIGRATIONS: readonly SqlMigration[] = [createReadings, apiClients];
