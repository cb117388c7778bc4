import { loadConfigOrExit } from '#libs/config';
import { createLogger } from '#libs/observability';
import { BackendMismatchError } from './backend-check.js';
import { runMigrations } from './migrate.js';

const config = loadConfigOrExit();
const logger = createLogger('migrate', config.log.level);
runMigrations(config.db, logger).then(
  () => process.exit(0),
  (err: unknown) => {
    logger.fatal({ err }, 'migration failed');
    // A URL pointing at the other kind of database is a configuration error (78), like a bad variable.
    process.exit(err instanceof BackendMismatchError ? 78 : 1);
  },
);
