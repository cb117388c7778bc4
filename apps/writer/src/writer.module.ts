import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig, loadConfigOrExit } from '#libs/config';
import { buildDataSourceOptions } from '#libs/database';
import { createLogger, createRegistry, type Logger, writerMetrics } from '#libs/observability';
import { createWorkerConnection } from '#libs/queue';
import { StoreReadingsWorker } from './batch/store-readings.worker.js';
import { WriterHealthServer } from './health/writer-health.server.js';
import { COMMANDS_REDIS, LOGGER, METRICS_REGISTRY, WRITER_METRICS } from './writer.tokens.js';

const config = loadConfigOrExit();
const logger = createLogger('writer', config.log.level);
const registry = createRegistry('writer');

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      useFactory: () => ({
        ...buildDataSourceOptions(config.db, 'meter-intake-writer', (err: unknown) => logger.warn({ err: String(err) }, 'database pool error')),
        retryAttempts: 1_000_000,
        retryDelay: 1_000,
      }),
    }),
  ],
  providers: [
    { provide: APP_CONFIG, useValue: config },
    { provide: LOGGER, useValue: logger },
    { provide: METRICS_REGISTRY, useValue: registry },
    { provide: WRITER_METRICS, useValue: writerMetrics(registry) },
    {
      provide: COMMANDS_REDIS,
      useFactory: (c: AppConfig, log: Logger) => {
        const redis = createWorkerConnection({ url: c.redis.url, commandTimeoutMs: c.redis.commandTimeoutMs, name: 'writer-commands' });
        redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
        return redis;
      },
      inject: [APP_CONFIG, LOGGER],
    },
    StoreReadingsWorker,
    WriterHealthServer,
  ],
})
export class WriterModule {
  static readonly config = config;
  static readonly logger = logger;
}

export type { Redis };
