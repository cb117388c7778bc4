import { type BeforeApplicationShutdown, Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { ReadingStore } from '#libs/database';
import { LOGGER, type Logger, type WriterMetrics } from '#libs/observability';
import {
  createWorkerConnection,
  READINGS_QUEUE,
  redisKeys,
  type StoredNotice,
  type StoreReadingsJob,
  waitingIds,
} from '#libs/queue';
import type { QueuedReading } from '#libs/readings';
import { COMMANDS_REDIS, WRITER_METRICS } from '../writer.tokens.js';
import { BatchBuffer } from './batch-buffer.js';
import { BatchWriter, type WriteOutcome } from './batch-writer.js';

/**
 * Consumes store-readings jobs. Each job's readings join the shared batch buffer; the job
 * completes when they are committed. On shutdown it stops taking jobs, lets the buffer flush
 * and only then closes.
 */
@Injectable()
export class StoreReadingsWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private worker?: Worker<StoreReadingsJob>;
  private workerConnection?: Redis;
  private readonly buffer: BatchBuffer;
  private readonly keys: ReturnType<typeof redisKeys>;
  private lastCompletedAt = Date.now();
  /** Ids of readings in the jobs now being processed whose clients wait for the commit (?wait=true). */
  private readonly waiting = new Map<string, number>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(WRITER_METRICS) private readonly metrics: WriterMetrics,
    @Inject(COMMANDS_REDIS) private readonly commands: Redis,
    store: ReadingStore,
  ) {
    this.keys = redisKeys(config.redis.keyPrefix);
    const writer = new BatchWriter(
      store,
      { spikeKwhPerDay: config.intake.spikeKwhPerDay, retryMaxMs: config.writer.retryMaxMs, txRetry: config.db.txRetry },
      logger,
      metrics,
    );
    this.buffer = new BatchBuffer(config.writer, async (readings) => {
      const outcome = await writer.write(readings);
      this.afterCommit(readings, outcome);
      return outcome;
    });
  }

  onApplicationBootstrap(): void {
    const w = this.config.writer;
    this.workerConnection = createWorkerConnection({ url: this.config.redis.url, commandTimeoutMs: this.config.redis.commandTimeoutMs, name: 'writer-worker' });
    this.worker = new Worker<StoreReadingsJob>(READINGS_QUEUE, (job) => this.process(job), {
      connection: this.workerConnection,
      prefix: this.keys.bullPrefix,
      concurrency: w.concurrency,
      lockDuration: w.lockDurationMs,
      stalledInterval: w.stalledIntervalMs,
      maxStalledCount: w.maxStalledCount,
      autorun: true,
    });
    this.worker.on('completed', () => {
      this.lastCompletedAt = Date.now();
      this.metrics.jobsCompleted.inc();
    });
    this.worker.on('failed', (job, err) => {
      this.logger.error({ jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, 'job failed');
    });
    this.worker.on('error', (err) => this.logger.error({ err: err.message }, 'worker error'));
    this.logger.info(
      { backend: this.config.db.backend, concurrency: w.concurrency, batchSize: w.batchSize, lingerMs: w.lingerMs, txRetryMaxAttempts: this.config.db.txRetry.maxAttempts },
      'writer consuming',
    );
  }

  private async process(job: Job<StoreReadingsJob>): Promise<{ stored: number; failed: number }> {
    // Known while the job's readings are being written: afterCommit runs for each batch before
    // the job's own promise settles, so every commit of these readings sees them.
    // Counted, not a plain set: one id can be in two jobs at once (a resend with the same key and
    // ?wait=true, a stalled job redelivered here), and the first to finish must not forget it.
    // (A job rejected while part of it is still buffered stops announcing that part; BullMQ
    // retries the job, and the retry's commit is announced.)
    const waiting = waitingIds(job.data);
    for (const id of waiting) this.waiting.set(id, (this.waiting.get(id) ?? 0) + 1);
    try {
      const outcome = await this.buffer.add(job.data.readings);
      return { stored: outcome.stored.length, failed: outcome.failed.length };
    } finally {
      for (const id of waiting) {
        const left = (this.waiting.get(id) ?? 1) - 1;
        if (left > 0) this.waiting.set(id, left);
        else this.waiting.delete(id);
      }
    }
  }

  /** Clears the "queued" markers and wakes clients waiting on ?wait=true; best effort, the rows are committed. */
  private afterCommit(readings: readonly QueuedReading[], outcome: WriteOutcome): void {
    const notices: StoredNotice[] = [];
    for (const s of outcome.stored) {
      if (this.waiting.has(s.id)) notices.push({ id: s.id, status: 'stored', flags: s.flags, ...(s.storedAt ? { storedAt: s.storedAt } : {}) });
    }
    for (const f of outcome.failed) {
      if (this.waiting.has(f.id)) notices.push({ id: f.id, status: 'failed', reason: f.reason });
    }
    const pipeline = this.commands.pipeline();
    pipeline.unlink(...readings.map((r) => this.keys.pending(r.id)));
    if (notices.length) pipeline.publish(this.keys.storedChannel, JSON.stringify(notices));
    pipeline.exec().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'could not clear pending markers'));
  }

  get health() {
    return { running: this.worker?.isRunning() ?? false, bufferedReadings: this.buffer.pendingReadings, lastCompletedAt: this.lastCompletedAt };
  }

  /** Before, not on, shutdown: the DataSource closes in onApplicationShutdown and the last batch still needs it. */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.logger.info({ signal }, 'draining: no new jobs, flushing the buffer');
    // close() stops fetching and waits for active jobs, which wait for their batch to commit.
    const closing = this.worker?.close();
    this.buffer.flushPending();
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.config.writer.drainTimeoutMs).unref());
    const result = await Promise.race([closing?.then(() => 'drained' as const), timeout]);
    if (result === 'timeout') {
      // Whatever is still active keeps its lock until it expires; the stalled checker of another
      // writer redelivers it and the idempotent insert makes that safe.
      this.logger.warn({ bufferedReadings: this.buffer.pendingReadings }, 'drain timed out; unfinished jobs will be redelivered');
    } else {
      this.logger.info('drained');
    }
    await this.workerConnection?.quit().catch(() => undefined);
  }
}
