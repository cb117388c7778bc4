import type { FactoryProvider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { LOGGER, type Logger } from '#libs/observability';
import { ReadingStore } from './reading-store.js';

/** The ReadingStore on the app's DataSource (from TypeOrmModule), for the API's and the writer's modules. */
export const readingStoreProvider: FactoryProvider<ReadingStore> = {
  provide: ReadingStore,
  inject: [DataSource, APP_CONFIG, LOGGER],
  useFactory: (dataSource: DataSource, config: AppConfig, logger: Logger) =>
    new ReadingStore(dataSource, {
      backend: config.db.backend,
      replica: Boolean(config.db.replicaUrl),
      onReplicaFallback: (err) => logger.warn({ err: String(err) }, 'read replica unavailable, reading from the primary'),
    }),
};
