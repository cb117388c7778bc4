import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { buildDataSourceOptions, readingStoreProvider } from '#libs/database';
import { LOGGER, type Logger, METRICS_REGISTRY, writerMetrics } from '#libs/observability';
import { createWorkerConnection } from '#libs/queue';
import { StoreReadingsWorker } from './batch/store-readings.worker.js';
import { WriterHealthServer } from './health/writer-health.server.js';
import { COMMANDS_REDIS, WRITER_METRICS } from './writer.tokens.js';

/** What main.ts builds once and hands to the module: nothing is created when this file is imported. */
export interface WriterRoot {
  config: AppConfig;
  logger: Logger;
  registry: Registry;
}

@Module({})
export class WriterModule {
  static forRoot({ config, logger, registry }: WriterRoot): DynamicModule {
    return {
      module: WriterModule,
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
          useFactory: (c: AppConfig, log: Logger): Redis => {
            const redis = createWorkerConnection({ url: c.redis.url, commandTimeoutMs: c.redis.commandTimeoutMs, name: 'writer-commands' });
            redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
            return redis;
          },
          inject: [APP_CONFIG, LOGGER],
        },
        readingStoreProvider,
        StoreReadingsWorker,
        WriterHealthServer,
      ],
    };
  }
}
