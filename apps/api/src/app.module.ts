import { type DynamicModule, Global, Module, type Type } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { ThrottlerModule } from '@nestjs/throttler';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { buildDataSourceOptions, readingStoreProvider } from '#libs/database';
import { type ApiMetrics, LOGGER, type Logger, METRICS_REGISTRY } from '#libs/observability';
import { createProducerConnection, redisKeys } from '#libs/queue';
import { API_METRICS, PRODUCER_REDIS } from './api.tokens.js';
import { ApiKeyCache } from './auth/api-key.cache.js';
import { ApiKeyGuard } from './auth/api-key.guard.js';
import { AuthFailures } from './auth/auth-failures.js';
import { clientLimit } from './throttling/client-throttler.guard.js';
import { DatabaseConnector } from './database/database-connector.js';
import { HealthController } from './health/health.controller.js';
import { AllExceptionsFilter } from './http/all-exceptions.filter.js';
import { BacklogMonitor } from './intake/backlog.monitor.js';
import { SubmissionCoalescer } from './intake/coalescer.js';
import { IntakeQueue } from './intake/intake-queue.js';
import { StoredNotices } from './intake/stored-notices.js';
import { MetersController } from './meters/meters.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { NaiveIntakeService } from './benchmark-modes/naive-intake.service.js';
import { NoopIntakeService } from './benchmark-modes/noop-intake.service.js';
import { ReadingStatusService } from './readings/reading-status.service.js';
import { ReadingIntake } from './readings/reading-intake.js';
import { ReadingsController } from './readings/readings.controller.js';
import { ReadingsService } from './readings/readings.service.js';
import { SubmissionBuilder } from './readings/submission-builder.js';
import { ClientThrottlerGuard } from './throttling/client-throttler.guard.js';
import { RedisThrottlerStorage } from './throttling/redis-throttler.storage.js';

/** What main.ts builds once and hands to the module: nothing is created when this file is imported. */
export interface ApiRoot {
  config: AppConfig;
  logger: Logger;
  registry: Registry;
  metrics: ApiMetrics;
}

/** The intake each INTAKE_MODE gets: the service's own, or a benchmark baseline. */
const INTAKES: Record<AppConfig['intake']['mode'], Type<ReadingIntake>> = { queue: ReadingsService, naive: NaiveIntakeService, noop: NoopIntakeService };

/** Process-wide values from main.ts, and the one producer Redis connection. */
@Global()
@Module({})
class CoreModule {
  static forRoot({ config, logger, registry, metrics }: ApiRoot): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        { provide: APP_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        { provide: METRICS_REGISTRY, useValue: registry },
        { provide: API_METRICS, useValue: metrics },
        {
          provide: PRODUCER_REDIS,
          useFactory: (c: AppConfig, log: Logger): Redis => {
            const redis = createProducerConnection({ url: c.redis.url, commandTimeoutMs: c.redis.commandTimeoutMs, name: `api-producer-${c.http.replicaName}` });
            let down = false;
            redis.on('error', (err) => {
              if (!down) log.warn({ err: err.message }, 'redis unreachable; answering 503 until it is back');
              down = true;
            });
            redis.on('ready', () => {
              if (down) log.info('redis reachable again');
              down = false;
            });
            return redis;
          },
          inject: [APP_CONFIG, LOGGER],
        },
      ],
      exports: [APP_CONFIG, LOGGER, METRICS_REGISTRY, API_METRICS, PRODUCER_REDIS],
    };
  }
}

@Module({})
export class AppModule {
  static forRoot(root: ApiRoot): DynamicModule {
    const { config, logger } = root;
    return {
      module: AppModule,
      imports: [
        CoreModule.forRoot(root),
        TypeOrmModule.forRootAsync({
          useFactory: () => ({
            ...buildDataSourceOptions(config.db, `meter-intake-${config.http.replicaName}`, (err: unknown) => logger.warn({ err: String(err) }, 'database pool error')),
            // The API must come up and answer 202s even while the database is down: the queue
            // absorbs. DatabaseConnector connects in the background instead.
            manualInitialization: true,
          }),
        }),
        ThrottlerModule.forRootAsync({
          inject: [APP_CONFIG, PRODUCER_REDIS],
          useFactory: (c: AppConfig, redis: Redis) => ({
            // A client's own limit (api_clients.rate_limit) or RATE_LIMIT; ApiKeyGuard has run by then.
            throttlers: [{ name: 'default', ttl: c.rateLimit.windowMs, limit: clientLimit(c.rateLimit.limit) }],
            // The HTTP-ceiling benchmark mode does nothing per request, not even count it.
            skipIf: () => c.intake.mode === 'noop',
            // One budget per client across every route, not one per route.
            generateKey: (_context: unknown, tracker: string, name: string) => `${name}:${tracker}`,
            storage: new RedisThrottlerStorage(redis, redisKeys(c.redis.keyPrefix).rateLimit, c.rateLimit.syncMs),
          }),
        }),
        TerminusModule.forRoot({ errorLogStyle: 'json', gracefulShutdownTimeoutMs: 0 }),
      ],
      controllers: [ReadingsController, MetersController, HealthController, MetricsController],
      providers: [
        DatabaseConnector,
        readingStoreProvider,
        IntakeQueue,
        SubmissionCoalescer,
        StoredNotices,
        BacklogMonitor,
        SubmissionBuilder,
        { provide: ReadingIntake, useClass: INTAKES[config.intake.mode] },
        ReadingStatusService,
        ApiKeyCache,
        AuthFailures,
        // In this order: the key first, so the rate limit counts the authenticated client.
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        { provide: APP_GUARD, useClass: ClientThrottlerGuard },
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
      ],
    };
  }
}
