import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BeforeApplicationShutdown, Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { errorMessage, ReadingStore } from '#libs/database';
import { LOGGER, type Logger, type WriterMetrics } from '#libs/observability';
import { createWorkerConnection, type QueueEntry, ReadingsQueue, redisKeys, retryDelayMs, type StoredNotice } from '#libs/queue';
import type { QueuedReading } from '#libs/readings';
import { COMMANDS_REDIS, WRITER_METRICS } from '../writer.tokens.js';
import { BatchBuffer } from './batch-buffer.js';
import { BatchWriter, type WriteOutcome } from './batch-writer.js';

/** How long a read waits for new jobs while the writer has nothing to do; also the bound on how long a stop waits for the read. */
const READ_BLOCK_MS = 1_000;
/** A writer that has held no job for this long (and holds none) is gone: its consumer name is removed. */
const IDLE_CONSUMER_MS = 3_600_000;

/** A job this writer holds: read or taken over, not yet committed and acknowledged. */
interface HeldJob {
  entry: QueueEntry;
  /** Failed write attempts so far. */
  attempts: number;
  /** When its idle time in Redis last started again (read, taken over, heartbeat). */
  since: number;
  /** Another writer took it over while this one was quiet: finish it, but stop heartbeating it. */
  lost: boolean;
  retry?: NodeJS.Timeout;
}

/**
 * Consumes the readings stream. Jobs are read many per command, their readings join the shared
 * batch buffer, and a job is acknowledged (and deleted) only after all its readings are
 * committed. Group commit on the read side too: while a batch is being written, new jobs gather
 * in Redis and the next read takes them all, so reads and acknowledgements are paid per batch.
 *
 * At-least-once, as the queue must be: a job whose writer dies or stalls past the lock is taken
 * over by another writer (the reclaim), and the idempotent insert makes the second write store
 * nothing new. A job that keeps failing moves to the failed set after JOB_ATTEMPTS attempts; one
 * whose writers keep dying, after WRITER_MAX_STALLED_COUNT stalls. On shutdown it stops reading,
 * writes what it holds and only then closes.
 */
@Injectable()
export class StoreReadingsWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  /** This process's name in the consumer group: unique, so a restarted writer never inherits a dead one's jobs except through the reclaim. */
  private readonly consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly queue: ReadingsQueue;
  private readonly storedChannel: string;
  private readonly buffer: BatchBuffer;
  private readonly held = new Map<string, HeldJob>();
  /** Ids of held readings whose clients wait for the commit (?wait=true), counted: one id can be in two jobs (a resend, a takeover). */
  private readonly waiting = new Map<string, number>();
  private readConnection?: Redis;
  private reading?: Promise<void>;
  private stopping = false;
  private wakeReader: () => void = () => undefined;
  private timers: NodeJS.Timeout[] = [];
  private lastCompletedAt = Date.now();
  private lastConsumerCleanup = Date.now();
  /** What the next completion round trip carries: acknowledged jobs, committed readings' markers, notices. */
  private completion = { jobs: [] as string[], readings: [] as string[], notices: [] as StoredNotice[], scheduled: false };
  /** The completion round trip under way, which a drain waits for. */
  private completing: Promise<void> = Promise.resolve();
  private reclaiming = false;
  private heartbeating = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(WRITER_METRICS) private readonly metrics: WriterMetrics,
    @Inject(COMMANDS_REDIS) commands: Redis,
    store: ReadingStore,
  ) {
    this.queue = new ReadingsQueue(commands, config.redis.keyPrefix);
    this.storedChannel = redisKeys(config.redis.keyPrefix).storedChannel;
    const writer = new BatchWriter(
      store,
      { spikeKwhPerDay: config.intake.spikeKwhPerDay, retryMaxMs: config.writer.retryMaxMs, txRetry: config.db.txRetry },
      logger,
      metrics,
    );
    this.buffer = new BatchBuffer(
      config.writer,
      async (readings) => {
        const outcome = await writer.write(readings);
        this.afterCommit(readings, outcome);
        return outcome;
      },
      // A batch came back: what gathered in Redis meanwhile is the next group.
      () => this.wakeReader(),
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    const w = this.config.writer;
    this.readConnection = createWorkerConnection({ url: this.config.redis.url, commandTimeoutMs: this.config.redis.commandTimeoutMs, name: `writer-read-${this.consumer}` });
    this.readConnection.on('error', (err) => this.logger.debug({ err: err.message }, 'read connection error'));
    await this.queue.ensureGroup();
    // Jobs a dead writer left behind are taken at once, then every stalled interval.
    await this.reclaim();
    this.timers.push(
      setInterval(() => void this.reclaim(), w.stalledIntervalMs),
      setInterval(() => void this.heartbeat(), Math.max(250, Math.floor(w.lockDurationMs / 4))),
    );
    this.reading = this.readLoop();
    this.logger.info(
      { backend: this.config.db.backend, consumer: this.consumer, concurrency: w.concurrency, batchSize: w.batchSize, lingerMs: w.lingerMs, txRetryMaxAttempts: this.config.db.txRetry.maxAttempts },
      'writer consuming',
    );
  }

  /**
   * Reads while there is room. With nothing being written it blocks until a job arrives; while
   * a batch is being written it reads again at once only if the last read was full (a backlog
   * in Redis), and otherwise waits for the batch to return, so what arrives meanwhile is read
   * in one command and written as one batch.
   */
  private async readLoop(): Promise<void> {
    let backlog = false;
    while (!this.stopping) {
      const room = this.config.writer.concurrency - this.held.size;
      // Jobs waiting out a retry backoff are held but not in the buffer: they do not stop the reads.
      // A partial batch waiting out WRITER_LINGER_MS takes what arrives meanwhile (a blocking read).
      const idle = this.buffer.idle || this.buffer.lingering;
      if (room <= 0 || (!idle && !backlog)) {
        // Woken when a batch settles or a job finishes; the timer only bounds the wait if a
        // wake-up were ever missed (a stall would otherwise last until the next one).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, READ_BLOCK_MS);
          this.wakeReader = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeReader = () => undefined;
        continue;
      }
      try {
        const entries = await this.queue.read(this.readConnection!, this.consumer, room, idle ? READ_BLOCK_MS : undefined);
        backlog = entries.length === room;
        // Taken even when stopping: they are delivered to this writer now, and written before it exits.
        for (const entry of entries) this.take(entry);
      } catch (err) {
        if (this.stopping) break;
        this.logger.warn({ err: errorMessage(err) }, 'reading the queue failed; retrying');
        await sleep(500);
      }
    }
  }

  private take(entry: QueueEntry): void {
    const known = this.held.get(entry.id);
    if (known) {
      // Our own job, idle long enough to be reclaimed (Redis was away, say): it is ours again.
      known.since = Date.now();
      known.lost = false;
      return;
    }
    const job: HeldJob = { entry, attempts: 0, since: Date.now(), lost: false };
    this.held.set(entry.id, job);
    this.write(job);
  }

  private write(job: HeldJob): void {
    const notify = job.entry.notify ?? [];
    for (const id of notify) this.waiting.set(id, (this.waiting.get(id) ?? 0) + 1);
    this.buffer
      .add(job.entry.readings)
      .then(
        () => this.done(job),
        (err: unknown) => this.failedAttempt(job, err),
      )
      .finally(() => {
        for (const id of notify) {
          const left = (this.waiting.get(id) ?? 1) - 1;
          if (left > 0) this.waiting.set(id, left);
          else this.waiting.delete(id);
        }
      });
  }

  private done(job: HeldJob): void {
    this.held.delete(job.entry.id);
    this.completion.jobs.push(job.entry.id);
    this.scheduleCompletion();
    this.lastCompletedAt = Date.now();
    this.metrics.jobsCompleted.inc();
    this.wakeReader();
  }

  /** Tries the job again after a backoff (1 s, 2 s, 4 s, ...), or after JOB_ATTEMPTS moves it to the failed set with the reason. */
  private failedAttempt(job: HeldJob, err: unknown): void {
    job.attempts++;
    const reason = errorMessage(err);
    if (this.stopping) {
      // Not retried here: handed back for another writer to take over at once.
      this.held.delete(job.entry.id);
      void this.release([job.entry.id]);
      return;
    }
    if (job.attempts < this.config.intake.jobAttempts) {
      const delayMs = retryDelayMs(job.attempts);
      this.logger.warn({ jobId: job.entry.id, attempt: job.attempts, delayMs, err: reason }, 'job attempt failed; retrying');
      job.retry = setTimeout(() => {
        job.retry = undefined;
        if (!this.stopping) this.write(job);
      }, delayMs);
      return;
    }
    void this.queue.fail(this.consumer, job.entry.id, reason).then(
      (moved) => {
        this.held.delete(job.entry.id);
        if (moved) this.logger.error({ jobId: job.entry.id, attemptsMade: job.attempts, readings: job.entry.readings.length, err: reason }, 'job failed');
        // Finished, failed or taken over by another writer meanwhile: that writer decides its fate.
        else this.logger.warn({ jobId: job.entry.id, attemptsMade: job.attempts, err: reason }, 'attempts ran out on a job this writer no longer holds; left to the writer that does');
        this.wakeReader();
      },
      (failErr: unknown) => {
        // Redis is away: the job stays in this writer's hands and in Redis; try once more later.
        this.logger.warn({ jobId: job.entry.id, err: errorMessage(failErr) }, 'could not move the job to the failed set; retrying');
        job.attempts--;
        job.retry = setTimeout(() => this.failedAttempt(job, err), 1_000);
      },
    );
  }

  /** Clears the committed readings' markers and announces what clients wait for (?wait=true); sent with the jobs' acknowledgements. */
  private afterCommit(readings: readonly QueuedReading[], outcome: WriteOutcome): void {
    for (const r of readings) this.completion.readings.push(r.id);
    for (const s of outcome.stored) {
      if (this.waiting.has(s.id)) this.completion.notices.push({ id: s.id, status: 'stored', flags: s.flags, ...(s.storedAt ? { storedAt: s.storedAt } : {}) });
    }
    for (const f of outcome.failed) {
      if (this.waiting.has(f.id)) this.completion.notices.push({ id: f.id, status: 'failed', reason: f.reason });
    }
    this.scheduleCompletion();
  }

  /**
   * At the end of this event-loop turn: the jobs a batch finished are acknowledged in one round
   * trip with its markers. Chained, so a drain that waits for the last one waits for every one
   * before it (a failed one is sent again from inside its own link).
   */
  private scheduleCompletion(): void {
    if (this.completion.scheduled) return;
    this.completion.scheduled = true;
    setImmediate(() => {
      this.completing = this.completing.then(() => this.sendCompletion());
    });
  }

  private async sendCompletion(): Promise<void> {
    const { jobs, readings, notices } = this.completion;
    this.completion = { jobs: [], readings: [], notices: [], scheduled: false };
    if (jobs.length + readings.length + notices.length === 0) return;
    for (;;) {
      try {
        await this.queue.complete(jobs, readings, notices.splice(0), this.storedChannel);
        return;
      } catch (err) {
        // The rows are committed. Until the acknowledgement lands the jobs stay in Redis (another
        // writer may take them over and find every row stored); keep trying. Notices are not
        // sent again: their clients have had their answer by then.
        this.logger.warn({ err: errorMessage(err), jobs: jobs.length }, 'could not acknowledge committed jobs; retrying');
        await sleep(1_000);
      }
    }
  }

  /** Takes over jobs whose writer went quiet past the lock; moves jobs that stalled too often to the failed set. */
  private async reclaim(): Promise<void> {
    // One at a time: on a slow or hung connection the timer must not stack calls that each claim for the same room.
    if (this.reclaiming) return;
    this.reclaiming = true;
    const w = this.config.writer;
    try {
      const room = w.concurrency - this.held.size;
      if (room > 0 && !this.stopping) {
        const { claimed, failed } = await this.queue.reclaim(this.consumer, w.lockDurationMs, room, w.maxStalledCount);
        for (const jobId of failed) this.logger.error({ jobId, maxStalledCount: w.maxStalledCount }, 'job failed: stalled too often');
        if (claimed.length) this.logger.warn({ jobs: claimed.length, readings: claimed.reduce((n, e) => n + e.readings.length, 0) }, 'took over stalled jobs');
        for (const entry of claimed) this.take(entry);
      }
      await this.queue.trimFailed();
      if (Date.now() - this.lastConsumerCleanup > IDLE_CONSUMER_MS) {
        this.lastConsumerCleanup = Date.now();
        await this.queue.removeIdleConsumers(IDLE_CONSUMER_MS, this.consumer);
      }
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'reclaim check failed');
    } finally {
      this.reclaiming = false;
    }
  }

  /** Jobs held for half the lock (a long retry, a slow database) have their idle time started again, so no other writer takes them. */
  private async heartbeat(): Promise<void> {
    const now = Date.now();
    const due = [...this.held.values()].filter((j) => !j.lost && now - j.since >= this.config.writer.lockDurationMs / 2);
    if (due.length === 0 || this.heartbeating) return;
    this.heartbeating = true;
    try {
      const mine = new Set(await this.queue.heartbeat(this.consumer, due.map((j) => j.entry.id)));
      for (const job of due) {
        if (mine.has(job.entry.id)) job.since = now;
        else {
          job.lost = true;
          this.logger.warn({ jobId: job.entry.id }, 'another writer took over a job this writer still holds; both writes store one row');
        }
      }
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'heartbeat failed');
    } finally {
      this.heartbeating = false;
    }
  }

  /** Hands jobs this writer will not finish back to the group, to be taken over at once without counting a stall (best effort: without it they come back after the lock). */
  private async release(jobIds: string[]): Promise<void> {
    if (jobIds.length === 0) return;
    try {
      const released = await this.queue.release(this.consumer, jobIds, this.config.writer.lockDurationMs);
      this.logger.info({ jobs: jobIds.length, released }, 'handed unfinished jobs back for another writer');
    } catch (err) {
      this.logger.warn({ err: errorMessage(err), jobs: jobIds.length }, 'could not hand jobs back; another writer takes them over after the lock');
    }
  }

  get health() {
    return { running: this.reading !== undefined && !this.stopping, heldJobs: this.held.size, bufferedReadings: this.buffer.pendingReadings, lastCompletedAt: this.lastCompletedAt };
  }

  /** Before, not on, shutdown: the DataSource closes in onApplicationShutdown and the last batch still needs it. */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.logger.info({ signal }, 'draining: no new jobs, writing what is held');
    this.stopping = true;
    this.wakeReader();
    for (const t of this.timers) clearInterval(t);
    // Jobs waiting out a retry backoff are not written now: handed back for another writer.
    const backingOff: string[] = [];
    for (const job of this.held.values()) {
      if (job.retry) {
        clearTimeout(job.retry);
        this.held.delete(job.entry.id);
        backingOff.push(job.entry.id);
      }
    }
    await this.release(backingOff);
    this.buffer.flushPending();
    const drained = (async () => {
      await this.reading;
      // Until every held job is committed and its acknowledgement has landed (a failed one is sent again).
      for (;;) {
        await this.completing;
        if (this.held.size === 0 && !this.completion.scheduled) break;
        await sleep(10);
      }
    })();
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.config.writer.drainTimeoutMs).unref());
    const result = await Promise.race([drained.then(() => 'drained' as const), timeout]);
    if (result === 'timeout') {
      // Whatever is still held is handed back unacknowledged; another writer takes it over, and
      // the idempotent insert makes that safe even for a batch that commits as this one exits.
      this.logger.warn({ heldJobs: this.held.size, bufferedReadings: this.buffer.pendingReadings }, 'drain timed out; unfinished jobs will be taken over by another writer');
      await this.release([...this.held.keys()]);
    } else {
      this.logger.info('drained');
    }
    this.readConnection?.disconnect();
  }
}
