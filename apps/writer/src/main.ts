import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { runMigrations } from '../../../libs/database/src/index.js';
import { NestJsonLogger } from '../../../libs/observability/src/index.js';
import { assertDurableRedis, createWorkerConnection } from '../../../libs/queue/src/index.js';
import { WriterModule } from './writer.module.js';

async function bootstrap(): Promise<void> {
  const { config, logger } = WriterModule;
  const probe = createWorkerConnection({ url: config.redis.url, commandTimeoutMs: config.redis.commandTimeoutMs, name: 'writer-boot' });
  try {
    await assertDurableRedis(probe);
  } finally {
    probe.disconnect();
  }
  if (config.db.migrateOnStart) await runMigrations(config.db, logger);
  // No HTTP server: a queue consumer with a small health/metrics port of its own.
  const app = await NestFactory.createApplicationContext(WriterModule, { logger: new NestJsonLogger(logger) });
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  logger.info({ backend: config.db.backend, replica: Boolean(config.db.replicaUrl) }, 'writer started');
}

bootstrap().catch((err: unknown) => {
  WriterModule.logger.fatal({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'writer failed to start');
  process.exit(1);
});
