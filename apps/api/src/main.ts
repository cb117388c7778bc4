import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { loadConfigOrExit } from '#libs/config';
import { runMigrations } from '#libs/database';
import { apiMetrics, createLogger, createRegistry, NestJsonLogger } from '#libs/observability';
import { PRODUCER_REDIS } from './api.tokens.js';
import { AppModule } from './app.module.js';
import { configureFastify, fastifyOptions } from './http/fastify-setup.js';

// Composition: the config is loaded once (a bad value stops the process with every problem
// named), and the logger and metrics are built here and handed to the module.
const config = loadConfigOrExit();
const logger = createLogger('api', config.log.level);
const registry = createRegistry('api');
const metrics = apiMetrics(registry);

/** How long a starting replica waits for Redis and the database before it listens anyway. */
const DEPENDENCY_WAIT_MS = 5_000;
/** How long a stopping replica waits for its supervisor to take it out of nginx before it closes anyway. */
const ROTATION_WAIT_MS = 10_000;
/** How long Nest's shutdown hooks (the queue, the pools, open ?wait requests) may take after that. */
const SHUTDOWN_HOOKS_MS = 15_000;

/**
 * Started by the native cluster's supervisor (an IPC channel is there), a replica told to stop
 * asks to be taken out of nginx first and keeps serving until that is done: a closing server
 * would refuse requests nginx had already sent it (503, or a reset for a connection still in the
 * listen queue). Without a supervisor (compose, Kubernetes) this returns at once; there the
 * orchestrator removes the replica from its endpoints, or a preStop delay covers it.
 */
async function leaveRotation(): Promise<void> {
  if (!process.send || !process.connected) return;
  const left = new Promise<boolean>((resolve) => {
    const onMessage = (message: unknown) => {
      if ((message as { type?: unknown } | null)?.type !== 'out-of-rotation') return;
      process.off('message', onMessage);
      resolve(true);
    };
    process.on('message', onMessage);
  });
  // With a callback: a channel that closed a moment ago (the supervisor died) is an error here, not an 'error' event that ends the process.
  const unsent = new Promise<boolean>((resolve) => process.send!({ type: 'draining' }, undefined, {}, (err) => err && resolve(false)));
  const answered = await Promise.race([left, unsent, sleep(ROTATION_WAIT_MS).then(() => false)]);
  if (!answered) logger.warn({ waitedMs: ROTATION_WAIT_MS }, 'the supervisor did not confirm this replica left nginx; closing anyway');
}

/** SIGTERM or SIGINT: out of rotation, then Nest's shutdown hooks (the queue and pools close), then exit. */
function closeOnSignals(app: NestFastifyApplication): void {
  let closing = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (closing) return;
      closing = true;
      logger.info({ signal }, 'stopping');
      // A shutdown hook that hangs must not keep a replica that left nginx alive for ever.
      setTimeout(() => {
        logger.error({ afterMs: ROTATION_WAIT_MS + SHUTDOWN_HOOKS_MS }, 'shutdown did not finish; exiting');
        process.exit(1);
      }, ROTATION_WAIT_MS + SHUTDOWN_HOOKS_MS).unref();
      void leaveRotation()
        .then(() => app.close())
        .then(
          // process.exit(), not the signal: the 'exit' event fires and pino writes out the last
          // lines it still holds (a process ended by its own signal loses them).
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err: String(err) }, 'shutdown failed');
            process.exit(1);
          },
        );
    });
  }
  // The IPC channel must not keep a finished process alive.
  process.channel?.unref();
}

/**
 * A replica gets requests as soon as it accepts connections: under Docker Compose its address is
 * in Docker's DNS, which nginx follows, from the moment its container starts. Listening before
 * the producer's Redis connection (every submission needs it) and the database pool (reads need
 * it) are up would turn its first requests away with 503. So wait for both, bounded: during an
 * outage the replica must still come up and answer what it can (202s while only the database is
 * down; 503 for the rest).
 */
async function waitForDependencies(app: NestFastifyApplication): Promise<void> {
  const redis = app.get<Redis>(PRODUCER_REDIS);
  const dataSource = app.get(DataSource);
  const deadline = Date.now() + DEPENDENCY_WAIT_MS;
  while (Date.now() < deadline && !(redis.status === 'ready' && dataSource.isInitialized)) await sleep(25);
  if (redis.status !== 'ready' || !dataSource.isInitialized) {
    logger.warn({ redis: redis.status === 'ready', database: dataSource.isInitialized, waitedMs: DEPENDENCY_WAIT_MS }, 'listening before every dependency is up');
  }
}

async function bootstrap(): Promise<void> {
  if (config.db.migrateOnStart) {
    await runMigrations(config.db, logger).catch((err: unknown) => {
      // Not fatal: the API can queue readings while the database is down; the writer retries migrations.
      logger.error({ err: String(err) }, 'migrations not applied at start-up');
    });
  }
  // Nest's own body parser is off: configureFastify installs a JSON-only parser (415 for anything else).
  // Fastify rather than Express: measured here at about 2.8x the requests/s for a small JSON POST.
  const adapter = new FastifyAdapter(fastifyOptions(config));
  configureFastify(adapter.getInstance(), config, metrics, logger);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot({ config, logger, registry, metrics }), adapter, { logger: new NestJsonLogger(logger), bodyParser: false });
  // Nest's hooks run on app.close(); the signals are handled here, so that the replica leaves
  // nginx before it stops listening.
  closeOnSignals(app);
  await app.init(); // starts the background database connection (DatabaseConnector)
  await waitForDependencies(app);
  await app.listen({ port: config.http.port, host: config.http.host });
  logger.info(
    {
      url: await app.getUrl(),
      backend: config.db.backend,
      replica: Boolean(config.db.replicaUrl),
      staleReads: config.db.backend === 'cockroach' ? 'follower-reads' : config.db.replicaUrl ? 'replica' : 'primary',
      name: config.http.replicaName,
      intakeMode: config.intake.mode,
    },
    'api listening',
  );
  if (config.intake.mode !== 'queue') {
    logger.warn({ intakeMode: config.intake.mode }, 'INTAKE_MODE is a benchmark-only mode: this replica does not queue readings as the service does');
  }
}

bootstrap().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'api failed to start');
  process.exit(1);
});
