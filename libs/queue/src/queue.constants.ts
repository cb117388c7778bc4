import type { DefaultJobOptions } from 'bullmq';
import type { QueuedReading } from '#libs/readings';

export const READINGS_QUEUE = 'readings';
export const STORE_READINGS_JOB = 'store-readings';

/** One job carries many readings: Redis and BullMQ work is paid per job, not per reading. */
export interface StoreReadingsJob {
  readings: QueuedReading[];
  /**
   * Beside the readings, not in them (it is about the request, not the reading): the ids of
   * readings whose client waits for the commit (?wait=true); the writer announces those.
   */
  notify?: string[];
}

/**
 * The ids a job's clients wait for. Jobs queued before `notify` travelled beside the readings
 * (up to 2026-12) carry it inside each reading as `notify: true`; both are read, so a job
 * queued by an older API replica during a rolling upgrade is announced too.
 */
export function waitingIds(job: StoreReadingsJob): string[] {
  const legacy = job.readings.filter((r) => (r as { notify?: unknown }).notify === true).map((r) => r.id);
  return job.notify?.length ? [...job.notify, ...legacy] : legacy;
}

/** Announced by the writer after COMMIT for readings whose client asked to wait. */
export interface StoredNotice {
  id: string;
  status: 'stored' | 'failed';
  flags?: string[];
  storedAt?: string;
  reason?: string;
}

/** Failed jobs are kept this long: a failed job is a reading someone must look at, never silent loss. */
export const FAILED_JOB_RETENTION_SECONDS = 30 * 86_400;

export function defaultJobOptions(attempts: number): DefaultJobOptions {
  return {
    attempts,
    backoff: { type: 'exponential', delay: 1_000 },
    // A completed job's readings are in the database and its markers are gone: nothing reads it
    // again. Kept by count they were most of Redis's memory under batches (up to 10,000 jobs of
    // up to BATCH_LIMIT readings, about 590 bytes each), so Redis memory followed the traffic mix.
    removeOnComplete: true,
    removeOnFail: { age: FAILED_JOB_RETENTION_SECONDS },
  };
}

/** Key names shared by the API (which writes them) and the writer (which clears them). */
export function redisKeys(prefix: string) {
  return {
    bullPrefix: `${prefix}:bull`,
    /** reading id -> job id, while the reading is queued; how GET /v1/readings/{id} answers "queued". */
    pending: (readingId: string) => `${prefix}:pending:${readingId}`,
    /**
     * The idempotency record of a keyed reading, named by the reading's id (itself a digest of
     * the client and its key), packed to 22 base64url characters: these records are most of what
     * Redis holds at a steady rate, so their size is the sizing formula's bytes per reading.
     */
    idempotency: (readingId: string) => `${prefix}:i:${Buffer.from(readingId.replaceAll('-', ''), 'hex').toString('base64url')}`,
    rateLimit: (key: string) => `${prefix}:rl:${key}`,
    storedChannel: `${prefix}:stored`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
