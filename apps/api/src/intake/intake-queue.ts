import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import type { ApiMetrics } from '#libs/observability';
import {
  CLAIM_READINGS_SCRIPT,
  defaultJobOptions,
  FAILED_JOB_RETENTION_SECONDS,
  LuaScript,
  READINGS_QUEUE,
  redisKeys,
  STORE_READINGS_JOB,
  type StoreReadingsJob,
} from '#libs/queue';
import type { QueuedReading } from '#libs/readings';
import { API_METRICS, PRODUCER_REDIS } from '../api.tokens.js';

const CLAIM_READINGS = new LuaScript(CLAIM_READINGS_SCRIPT);

/** A reading about to be queued, with what its idempotency check needs. */
export interface Submission {
  reading: QueuedReading;
  /** Its client waits for the commit (?wait=true). */
  notify?: boolean;
  /** Idempotency key (header or submissionId), if the client sent one. */
  idempotencyKey?: string;
  /** Scope of the key: the API key when present, so two clients' keys never collide. */
  scope: string;
  /** What the key must keep naming (409 otherwise); only computed when there is a key. */
  fingerprint: string;
}

/**
 * Turns many readings into one durable queue job: one script call claims idempotency keys and
 * records "queued" markers for all of them, one BullMQ add stores the job. When this resolves
 * the job is in Redis (AOF-persisted); when it rejects, the caller answers 503.
 */
@Injectable()
export class IntakeQueue implements OnApplicationShutdown {
  private queueInstance?: Queue<StoreReadingsJob>;
  private readonly keys: ReturnType<typeof redisKeys>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(PRODUCER_REDIS) private readonly redis: Redis,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
  ) {
    this.keys = redisKeys(config.redis.keyPrefix);
    // BullMQ initialises its connection once, and with a fail-fast connection that first
    // attempt must find Redis up: create the queue on the first 'ready', not at boot.
    if (redis.status === 'ready') this.createQueue();
    else redis.once('ready', () => this.createQueue());
  }

  private createQueue(): void {
    this.queueInstance ??= new Queue<StoreReadingsJob>(READINGS_QUEUE, {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
      defaultJobOptions: defaultJobOptions(this.config.intake.jobAttempts),
      skipWaitingForReady: true,
    });
    // The producer connection already reports outages once; without a listener BullMQ prints each retry.
    this.queueInstance.on('error', () => undefined);
  }

  get queue(): Queue<StoreReadingsJob> {
    if (!this.queueInstance) throw new Error('Redis has not been reachable since start-up');
    return this.queueInstance;
  }

  get redisReady(): boolean {
    return this.redis.status === 'ready' && this.queueInstance !== undefined;
  }

  /** Returns the indexes of submissions refused because their key was used with another payload. */
  async enqueue(submissions: readonly Submission[]): Promise<Set<number>> {
    const started = performance.now();
    const jobId = randomUUID();
    const keys: string[] = [];
    const args: (string | number)[] = [this.config.intake.idempotencyTtlSeconds, FAILED_JOB_RETENTION_SECONDS, jobId];
    for (const s of submissions) {
      const pending = this.keys.pending(s.reading.id);
      keys.push(pending, s.idempotencyKey ? this.keys.idempotency(s.reading.id) : pending);
      args.push(s.idempotencyKey ? s.fingerprint : '');
    }
    const conflicts = new Set((await CLAIM_READINGS.run(this.redis, keys, args)) as number[]);
    const readings: QueuedReading[] = [];
    const notify: string[] = [];
    submissions.forEach((s, i) => {
      if (conflicts.has(i)) return;
      readings.push(s.reading);
      if (s.notify) notify.push(s.reading.id);
    });
    if (readings.length > 0) {
      await this.queue.add(STORE_READINGS_JOB, notify.length ? { readings, notify } : { readings }, { jobId });
      this.metrics.jobSize.observe(readings.length);
    }
    this.metrics.enqueueDuration.observe((performance.now() - started) / 1000);
    return conflicts;
  }

  /** Where a queued reading is: its job's state and data, or undefined if it is not queued. */
  async pendingJob(readingId: string): Promise<{ state: string; reading?: QueuedReading; failedReason?: string } | undefined> {
    const jobId = await this.redis.get(this.keys.pending(readingId));
    if (!jobId) return undefined;
    const job = await this.queue.getJob(jobId);
    if (!job) return undefined;
    const state = await job.getState();
    return { state, reading: job.data.readings.find((r) => r.id === readingId), failedReason: job.failedReason };
  }

  async backlogJobs(): Promise<number> {
    const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.queueInstance?.close().catch(() => undefined);
  }
}
