import { loadConfigOrExit } from '../../config/src/index.js';
import { createLogger } from '../../observability/src/index.js';
import { runMigrations } from './migrate.js';

const config = loadConfigOrExit();
const logger = createLogger('migrate', config.log.level);
runMigrations(config.db, logger).then(
  () => process.exit(0),
  (err: unknown) => {
    logger.fatal({ err }, 'migration failed');
    process.exit(1);
  },
);
