import { createServer, type Server } from 'node:http';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { ReadingStore } from '#libs/database';
import { LOGGER, type Logger, METRICS_REGISTRY } from '#libs/observability';
import { StoreReadingsWorker } from '../batch/store-readings.worker.js';
import { COMMANDS_REDIS } from '../writer.tokens.js';

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms).unref())]);
}

/** The writer's only HTTP surface: liveness, readiness and Prometheus metrics on a small port. */
@Injectable()
export class WriterHealthServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private server?: Server;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(COMMANDS_REDIS) private readonly redis: Redis,
    private readonly store: ReadingStore,
    private readonly worker: StoreReadingsWorker,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req.url ?? '/').then(({ status, body, type }) => {
        res.writeHead(status, { 'content-type': type });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.config.writer.healthPort, this.config.http.host, resolve));
    const address = this.server.address();
    this.logger.info({ port: typeof address === 'object' && address ? address.port : address }, 'writer health and metrics listening');
  }

  private async handle(url: string): Promise<{ status: number; body: string; type: string }> {
    const json = (status: number, body: unknown) => ({ status, body: JSON.stringify(body), type: 'application/json' });
    if (url === '/health/live') return json(200, { status: 'ok' });
    if (url === '/metrics') return { status: 200, body: await this.registry.metrics(), type: this.registry.contentType };
    if (url === '/health/ready') {
      const checks: Record<string, { status: 'up' | 'down'; message?: string }> = {};
      const probe = async (name: string, fn: () => Promise<unknown>) => {
        try {
          await withTimeout(fn(), 1_000, name);
          checks[name] = { status: 'up' };
        } catch (err) {
          checks[name] = { status: 'down', message: err instanceof Error ? err.message : String(err) };
        }
      };
      await Promise.all([probe('redis', () => this.redis.ping()), probe('database', () => this.store.ping())]);
      checks.worker = this.worker.health.running ? { status: 'up' } : { status: 'down', message: 'worker not running' };
      const ok = Object.values(checks).every((c) => c.status === 'up');
      return json(ok ? 200 : 503, { status: ok ? 'ok' : 'error', backend: this.config.db.backend, checks, ...this.worker.health });
    }
    return json(404, { error: { code: 'not_found', message: 'no such route', details: [] } });
  }

  async onApplicationShutdown(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
