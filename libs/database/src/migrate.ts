import { DataSource } from 'typeorm';
import type { AppConfig } from '../../config/src/index.js';
import type { Logger } from '../../observability/src/index.js';
import { buildDataSourceOptions } from './data-source.options.js';
import { dialectFor } from './sql-dialect.js';

/**
 * Applies pending migrations. Safe when several replicas start at once: they queue on a
 * session-level advisory lock, and each one after the first finds nothing left to do.
 */
export async function runMigrations(db: AppConfig['db'], logger: Logger): Promise<string[]> {
  const dataSource = new DataSource(buildDataSourceOptions({ ...db, replicaUrl: undefined, poolSize: 2 }, 'meter-intake-migrate', (err) => logger.warn({ err }, 'migration pool error')));
  await dataSource.initialize();
  const lock = dialectFor(db.backend).migrationLock;
  const runner = dataSource.createQueryRunner('master');
  try {
    await runner.connect();
    if (lock) await runner.query(lock.lock);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    if (lock) await runner.query(lock.unlock);
    const names = applied.map((m) => m.name);
    logger.info({ applied: names }, names.length ? 'migrations applied' : 'schema up to date');
    return names;
  } finally {
    await runner.release();
    await dataSource.destroy();
  }
}
