import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfigOrExit } from '#libs/config';
import { assertBackendAt, BackendMismatchError, errorMessage, runMigrations } from '#libs/database';
import { createLogger, createRegistry, NestJsonLogger } from '#libs/observability';
import { assertDurableRedis, createWorkerConnection } from '#libs/queue';
import { WriterModule } from './writer.module.js';

// Composition: the config is loaded once (a bad value stops the process with every problem
// named), and the logger and metrics registry are built here and handed to the module.
const config = loadConfigOrExit();
const logger = createLogger('writer', config.log.level);
const registry = createRegistry('writer');

async function bootstrap(): Promise<void> {
  const probe = createWorkerConnection({ url: config.redis.url, commandTimeoutMs: config.redis.commandTimeoutMs, name: 'writer-boot' });
  try {
    const { appendfsync } = await assertDurableRedis(probe);
    if (appendfsync !== 'always') {
      logger.warn({ appendfsync }, 'Redis appendfsync is not always: a crash of Redis can lose acknowledged readings (docs/OPERATIONS.md#redis-requirements)');
    }
  } finally {
    probe.disconnect();
  }
  // Before any pool, migration or job: the URL must point at the configured kind of database.
  // While it is unreachable, wait (the writer is useless without it, and the queue holds the work).
  let serverVersion: string | undefined;
  while (serverVersion === undefined) {
    try {
      serverVersion = await assertBackendAt(config.db.url, config.db.backend, config.db.connectTimeoutMs);
    } catch (err) {
      if (err instanceof BackendMismatchError) throw err;
      logger.warn({ err: errorMessage(err), backend: config.db.backend }, 'database not reachable yet; waiting');
      await sleep(1_000);
    }
  }
  logger.info({ backend: config.db.backend, serverVersion, database: redactUrl(config.db.url) }, 'database backend checked');
  if (config.db.migrateOnStart) await runMigrations(config.db, logger);
  // No HTTP server: a queue consumer with a small health/metrics port of its own.
  const app = await NestFactory.createApplicationContext(WriterModule.forRoot({ config, logger, registry }), { logger: new NestJsonLogger(logger) });
  // useProcessExit: after the hooks, exit through process.exit() rather than re-raising the
  // signal, so that the 'exit' event fires and pino writes out the last lines it still holds
  // (a process ended by its own signal loses them: "drained" went missing that way).
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  logger.info({ backend: config.db.backend, replica: Boolean(config.db.replicaUrl), database: redactUrl(config.db.url) }, 'writer started');
}

/** The URL without its password, for logs. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

bootstrap().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'writer failed to start');
  // A URL that points at the other kind of database is a configuration error, like a bad variable.
  process.exit(err instanceof BackendMismatchError ? 78 : 1);
});
