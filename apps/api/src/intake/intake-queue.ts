import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import type { ApiMetrics } from '#libs/observability';
import { type EnqueueItem, type LocatedReading, ReadingsQueue } from '#libs/queue';
import { API_METRICS, PRODUCER_REDIS } from '../api.tokens.js';

/** A reading about to be queued: the reading, its idempotency fingerprint ('' without a key), whether its client waits. */
export type Submission = EnqueueItem;

/**
 * Turns many readings into one durable queue job: one script call claims their idempotency
 * keys, adds the job to the stream and records their "queued" markers. When this resolves the
 * job is in Redis (AOF-persisted); when it rejects, the caller answers 503.
 */
@Injectable()
export class IntakeQueue {
  private readonly queue: ReadingsQueue;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(PRODUCER_REDIS) private readonly redis: Redis,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
  ) {
    this.queue = new ReadingsQueue(redis, config.redis.keyPrefix);
  }

  get redisReady(): boolean {
    return this.redis.status === 'ready';
  }

  /** Returns the indexes of submissions refused because their key was used with another payload. */
  async enqueue(submissions: readonly Submission[]): Promise<Set<number>> {
    const started = performance.now();
    const { conflicts } = await this.queue.enqueue(submissions, this.config.intake.idempotencyTtlSeconds);
    if (conflicts.size < submissions.length) this.metrics.jobSize.observe(submissions.length - conflicts.size);
    this.metrics.enqueueDuration.observe((performance.now() - started) / 1000);
    return conflicts;
  }

  /** Where a reading not yet in the database is: queued in a job, or in the failed set. */
  locate(readingId: string): Promise<LocatedReading | undefined> {
    return this.queue.locate(readingId);
  }

  backlogJobs(): Promise<number> {
    return this.queue.depth();
  }
}
