import { Controller, Get, Headers, Inject, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { SkipThrottle } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { ReadingStore } from '#libs/database';
import { Public } from '../auth/auth.decorators.js';
import { PRODUCER_REDIS } from '../api.tokens.js';
import { ApiError } from '../http/api-error.js';
import { viaEdge } from '../http/edge.js';
import { BacklogMonitor } from '../intake/backlog.monitor.js';

const CHECK_TIMEOUT_MS = 1_000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS).unref()),
  ]);
}

@Public()
@SkipThrottle()
@Controller('health')
export class HealthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(PRODUCER_REDIS) private readonly redis: Redis,
    private readonly store: ReadingStore,
    private readonly backlog: BacklogMonitor,
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
  ) {}

  /** Where meter history with consistency=eventual is read: replica, primary (no replica configured) or follower-reads. */
  private get staleReads(): string {
    if (this.config.db.backend === 'cockroach') return 'follower-reads';
    return this.config.db.replicaUrl ? 'replica' : 'primary';
  }

  /** The process is up and its event loop turns; nothing external, so a Redis outage never restarts replicas. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  /**
   * Whether this replica should get traffic: Redis and the database answer, and the backlog is
   * below the shedding mark. On the replica's own port, Terminus's full report; through nginx,
   * only whether it is ready, since backend, backlog and error messages are internals.
   */
  @Get('ready')
  @HealthCheck()
  async ready(@Headers() headers: Record<string, string | undefined>) {
    if (!viaEdge(headers)) return this.report();
    try {
      await this.report();
      return { status: 'ok' };
    } catch (err) {
      if (!(err instanceof ServiceUnavailableException)) throw err;
      throw new ApiError(503, 'unavailable', 'not ready', [], { 'retry-after': '1' });
    }
  }

  private report() {
    return this.health.check([
      async () => {
        const check = this.indicators.check('redis');
        try {
          await withTimeout(this.redis.ping(), 'redis');
          return check.up();
        } catch (err) {
          return check.down({ message: err instanceof Error ? err.message : String(err) });
        }
      },
      async () => {
        const check = this.indicators.check('database');
        try {
          await withTimeout(this.store.ping(), 'database');
          return check.up({ backend: this.config.db.backend, staleReads: this.staleReads });
        } catch (err) {
          return check.down({ backend: this.config.db.backend, staleReads: this.staleReads, message: err instanceof Error ? err.message : String(err) });
        }
      },
      () => {
        const check = this.indicators.check('backlog');
        const data = { jobs: this.backlog.jobs, highWater: this.config.intake.highWaterJobs, polledMsAgo: this.backlog.ageMs };
        return this.backlog.overHighWater ? check.down(data) : check.up(data);
      },
    ]);
  }
}
