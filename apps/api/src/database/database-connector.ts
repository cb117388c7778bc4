import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { assertBackendAt, BackendMismatchError } from '#libs/database';
import { LOGGER, type Logger } from '#libs/observability';
import { ApiError } from '../http/api-error.js';

/**
 * Connects the API's DataSource in the background. Intake never touches the database, so a
 * replica must start and take readings while PostgreSQL is down; only reads wait for it.
 */
@Injectable()
export class DatabaseConnector implements OnApplicationBootstrap, OnApplicationShutdown {
  private stopped = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    void this.connect(500);
  }

  private async connect(delayMs: number): Promise<void> {
    if (this.stopped || this.dataSource.isInitialized) return;
    try {
      const { url, backend, connectTimeoutMs } = this.config.db;
      const serverVersion = await assertBackendAt(url, backend, connectTimeoutMs);
      await this.dataSource.initialize();
      this.logger.info({ backend: this.config.db.backend, serverVersion }, 'database connected');
    } catch (err) {
      if (err instanceof BackendMismatchError) {
        // The URL points at the other kind of database: a configuration error, never a fallback.
        this.logger.fatal({ err: err.message }, 'database backend mismatch');
        process.exit(78);
      }
      this.logger.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: delayMs }, 'database not reachable; reads answer 503 until it is');
      this.timer = setTimeout(() => void this.connect(Math.min(delayMs * 2, 5_000)), delayMs);
      this.timer.unref();
    }
  }

  /** For read paths: a 503 instead of a 500 while the pool is not connected. */
  assertConnected(): void {
    if (!this.dataSource.isInitialized) {
      throw new ApiError(503, 'database_unavailable', 'the database is not reachable; retry shortly', [], { 'retry-after': '2' });
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.dataSource.isInitialized) await this.dataSource.destroy().catch(() => undefined);
  }
}
