export * from './data-source.options.js';
export * from './db-errors.js';
export * from './sql-dialect.js';
export * from './reading-rows.js';
export * from './migrate.js';
export * from './entities/reading.entity.js';
export * from './entities/failed-reading.entity.js';
export * from './transaction-retry.js';
