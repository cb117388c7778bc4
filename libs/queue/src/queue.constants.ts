import type { QueuedReading } from '#libs/readings';

/**
 * The readings queue is one Redis stream. A stream entry is a job: it carries a group of
 * readings (a coalesced group of singles, or one batch), so Redis work is paid per job and the
 * writer reads and acknowledges many jobs per command.
 */
/** The consumer group every writer reads through: each entry goes to one writer at a time. */
export const WRITERS_GROUP = 'writers';

/** A job as it travels: the readings, and the ids of those whose client waits for the commit (?wait=true). */
export interface StoreReadingsJob {
  readings: QueuedReading[];
  /** Beside the readings, not in them (it is about the request, not the reading). */
  notify?: string[];
}

/** A job read from the stream: its entry id (which also says when Redis took it) and its content. */
export interface QueueEntry extends StoreReadingsJob {
  id: string;
}

/** Announced by the writer after COMMIT for readings whose client asked to wait. */
export interface StoredNotice {
  id: string;
  status: 'stored' | 'failed';
  flags?: string[];
  storedAt?: string;
  reason?: string;
}

/** A job the writers gave up on, as the failed set keeps it: never deleted before its retention, never silent. */
export interface FailedJob {
  id: string;
  reason: string;
  failedAt: number;
  deliveries: number;
  readings: QueuedReading[];
}

/** Failed jobs are kept this long: a failed job is a reading someone must look at, never silent loss. */
export const FAILED_JOB_RETENTION_SECONDS = 30 * 86_400;
/**
 * A reading's "queued" marker lives this long from its enqueue; it is deleted at COMMIT. Twice
 * the failed set's retention: the retention counts from the failure, which comes after the
 * enqueue (minutes of retries, or as long as the backlog waited), and a reading of a failed job
 * must stay findable through its marker for as long as the job is kept.
 */
export const PENDING_MARKER_TTL_SECONDS = 2 * FAILED_JOB_RETENTION_SECONDS;

/** A job's delivery attempts after failures, and the delay before the next: 1 s, 2 s, 4 s, ... */
export function retryDelayMs(attempt: number): number {
  return 1_000 * 2 ** Math.min(attempt - 1, 20);
}

/** 36-character UUID -> 22 base64url characters: these names are most of what Redis holds per reading. */
const packId = (readingId: string) => Buffer.from(readingId.replaceAll('-', ''), 'hex').toString('base64url');

/**
 * Key names shared by the API (which writes them) and the writer (which clears them). Every key
 * of one queue carries the same hash tag, the prefix itself (`{mi}`; `{mi.<queue>}` for a queue
 * of its own), so the scripts that touch a job and its readings' records stay valid on Redis
 * Cluster, where a script's keys must share a slot.
 */
export function redisKeys(prefix: string, queue?: string) {
  const tag = queue === undefined ? `{${prefix}}` : `{${prefix}.${queue}}`;
  return {
    /** The stream: one entry per job, deleted once its readings are committed (so its length is the backlog). */
    stream: `${tag}:s`,
    /** Failed jobs: entry id -> JSON (FailedJob without the id); with `failedAt`, their ids by failure time (for retention and listing). */
    failed: `${tag}:failed`,
    failedAt: `${tag}:failed:at`,
    /**
     * Per reading, no separator after the tag: with the default prefix these names are 28
     * characters, which keeps a record in a smaller allocation than 31 would (165 against 181
     * bytes per record, bench/results/stream-queue-2026-12-07/idempotency-memory.txt).
     * reading id -> entry id, while the reading is queued (and kept with a failed job): how
     * GET /v1/readings/{id} finds a reading that is not stored yet.
     */
    pending: (readingId: string) => `${tag}p:${packId(readingId)}`,
    /** Both of a reading's names, its id packed once (the enqueue needs both per reading). */
    readingKeys: (readingId: string) => {
      const packed = packId(readingId);
      return { pending: `${tag}p:${packed}`, idempotency: `${tag}i:${packed}` };
    },
    /**
     * The idempotency record of a keyed reading, named by the reading's id (itself a digest of
     * the client and its key): these records are most of what Redis holds at a steady rate, so
     * their size is the sizing formula's bytes per reading.
     */
    idempotency: (readingId: string) => `${tag}i:${packId(readingId)}`,
    rateLimit: (key: string) => `${prefix}:rl:${key}`,
    storedChannel: `${prefix}:stored`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
