import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import type { ApiMetrics } from '#libs/observability';
import { API_METRICS } from '../api.tokens.js';
import { IntakeQueue } from './intake-queue.js';

/**
 * Polls the queue depth in the background so shedding costs nothing per request. Above the
 * high-water mark new readings get 503 + Retry-After: the writers are behind and taking more
 * would only grow Redis memory towards its limit.
 */
@Injectable()
export class BacklogMonitor implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private depth = 0;
  private polledAt = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
    private readonly intake: IntakeQueue,
  ) {}

  onApplicationBootstrap(): void {
    const poll = () => {
      this.intake.backlogJobs().then(
        (depth) => {
          this.depth = depth;
          this.polledAt = Date.now();
          this.metrics.queueDepth.set(depth);
        },
        () => undefined, // Redis down: requests already fail fast on the connection state.
      );
    };
    poll();
    this.timer = setInterval(poll, this.config.intake.backlogPollMs);
    this.timer.unref();
  }

  get jobs(): number {
    return this.depth;
  }

  get overHighWater(): boolean {
    return this.depth >= this.config.intake.highWaterJobs;
  }

  get ageMs(): number {
    return Date.now() - this.polledAt;
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }
}
