import type { Redis } from 'ioredis';
import type { QueuedReading } from '#libs/readings';
import { LuaScript } from './lua-script.js';
import {
  FAILED_JOB_RETENTION_SECONDS,
  type FailedJob,
  PENDING_MARKER_TTL_SECONDS,
  type QueueEntry,
  redisKeys,
  type RedisKeys,
  type StoredNotice,
  WRITERS_GROUP,
} from './queue.constants.js';
import { ENQUEUE_SCRIPT, FAIL_SCRIPT, HEARTBEAT_SCRIPT, LOCATE_SCRIPT, RECLAIM_SCRIPT, RELEASE_SCRIPT, TRIM_FAILED_SCRIPT } from './queue.scripts.js';

const ENQUEUE = new LuaScript(ENQUEUE_SCRIPT);
const RECLAIM = new LuaScript(RECLAIM_SCRIPT);
const HEARTBEAT = new LuaScript(HEARTBEAT_SCRIPT);
const RELEASE = new LuaScript(RELEASE_SCRIPT);
const FAIL = new LuaScript(FAIL_SCRIPT);
const LOCATE = new LuaScript(LOCATE_SCRIPT);
const TRIM_FAILED = new LuaScript(TRIM_FAILED_SCRIPT);

/** One reading to queue, with what its idempotency check needs. */
export interface EnqueueItem {
  reading: QueuedReading;
  /** Its idempotency record's fingerprint, or '' when the client sent no key. */
  fingerprint: string;
  /** Its client waits for the commit (?wait=true). */
  notify?: boolean;
}

/** Where a reading waits: in a job of the stream, or in the failed set with the reason. */
export type LocatedReading = { state: 'queued'; reading: QueuedReading | undefined; jobId: string } | { state: 'failed'; reading: QueuedReading | undefined; reason: string; jobId: string };

export interface QueueCounts {
  /** In the stream, not yet handed to a writer. */
  waiting: number;
  /** Handed to a writer, not yet committed and acknowledged. */
  active: number;
  failed: number;
}

/** An entry as XREADGROUP, XCLAIM and XRANGE give it: [id, [field, value, ...]]. */
type RawEntry = [string, string[]];

function entryOf([id, fields]: RawEntry): QueueEntry {
  let readings: QueuedReading[] = [];
  let notify: string[] | undefined;
  for (let k = 0; k < fields.length; k += 2) {
    if (fields[k] === 'r') readings = JSON.parse(fields[k + 1]!) as QueuedReading[];
    else if (fields[k] === 'n' && fields[k + 1]) notify = fields[k + 1]!.split(',');
  }
  return notify ? { id, readings, notify } : { id, readings };
}

/** Ids per call of the scripts that take a list of jobs: well under Lua's limit on unpack (about 8,000). */
const IDS_PER_CALL = 1_000;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const isNoGroup = (err: unknown) => err instanceof Error && err.message.startsWith('NOGROUP');

/**
 * Every Redis operation of the readings queue, for the API (enqueue, locate, depth), the writer
 * (read, complete, reclaim, heartbeat, fail) and the tools that inspect it. The queue is one
 * stream read through one consumer group:
 * - a job is one entry, added with its readings' idempotency claims and markers in one script;
 * - a writer reads many jobs per XREADGROUP, and after COMMIT acknowledges and deletes them
 *   with their markers in one pipeline, so the stream's length is the backlog;
 * - a job whose writer went quiet for longer than the lock is taken over by another writer
 *   (XPENDING + XCLAIM), and after too many stalls or failed attempts it moves to the failed
 *   set, kept FAILED_JOB_RETENTION_SECONDS.
 * Each writer reads as its own consumer (a unique name per process).
 */
export class ReadingsQueue {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    queue?: string,
  ) {
    this.keys = redisKeys(prefix, queue);
  }

  /** Returns the 0-based indexes of items refused because their key was used with another payload, and the job's id if one was added. */
  async enqueue(items: readonly EnqueueItem[], idempotencyTtlSeconds: number): Promise<{ conflicts: Set<number>; jobId?: string }> {
    const keys: string[] = [this.keys.stream];
    const args: (string | number)[] = [idempotencyTtlSeconds, PENDING_MARKER_TTL_SECONDS];
    for (const { reading, fingerprint, notify } of items) {
      const { pending, idempotency } = this.keys.readingKeys(reading.id);
      keys.push(pending, fingerprint ? idempotency : pending);
      args.push(fingerprint, JSON.stringify(reading), notify ? reading.id : '');
    }
    const [conflicts, jobId] = (await ENQUEUE.run(this.redis, keys, args)) as [number[], string];
    return jobId ? { conflicts: new Set(conflicts), jobId } : { conflicts: new Set(conflicts) };
  }

  /**
   * Creates the consumer group from the stream's start, so jobs added before any writer ran are
   * read too. Looks first: at maxmemory Redis refuses XGROUP CREATE even when the group exists,
   * and a writer (re)starting against a full Redis must still drain it.
   */
  async ensureGroup(): Promise<void> {
    if (await this.groupExists()) return;
    try {
      await this.redis.xgroup('CREATE', this.keys.stream, WRITERS_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }

  private async groupExists(): Promise<boolean> {
    let groups: unknown[][];
    try {
      groups = (await this.redis.xinfo('GROUPS', this.keys.stream)) as unknown[][];
    } catch (err) {
      if (err instanceof Error && /no such key/i.test(err.message)) return false;
      throw err;
    }
    return groups.some((flat) => flat[flat.indexOf('name') + 1] === WRITERS_GROUP);
  }

  /**
   * New jobs for `consumer`, up to `count`; with `blockMs`, waits that long for the first one
   * (on `connection`, which a blocking read holds: not the shared command connection).
   */
  async read(connection: Redis, consumer: string, count: number, blockMs?: number): Promise<QueueEntry[]> {
    const block = blockMs === undefined ? [] : ['BLOCK', blockMs];
    let reply: [string, RawEntry[]][] | null;
    try {
      // The named command, not call(): ioredis maps its RESP3 reply to the RESP2 shape only there.
      const xreadgroup = connection.xreadgroup.bind(connection) as (...args: (string | number)[]) => Promise<unknown>;
      reply = (await xreadgroup('GROUP', WRITERS_GROUP, consumer, 'COUNT', count, ...block, 'STREAMS', this.keys.stream, '>')) as [string, RawEntry[]][] | null;
    } catch (err) {
      // The stream or its group is gone (a fresh Redis, a flush): make them again and read on.
      if (!isNoGroup(err)) throw err;
      await this.ensureGroup();
      return [];
    }
    return reply?.[0]?.[1].map(entryOf) ?? [];
  }

  /**
   * After COMMIT: acknowledges and deletes the finished jobs, clears the committed readings'
   * markers and announces the commits clients wait for, in one pipeline (one round trip).
   */
  async complete(jobIds: readonly string[], committedReadingIds: readonly string[], notices: readonly StoredNotice[], channel: string): Promise<void> {
    const pipeline = this.redis.pipeline();
    if (committedReadingIds.length) pipeline.unlink(...committedReadingIds.map((id) => this.keys.pending(id)));
    if (jobIds.length) {
      // Deleted before acknowledged: cut between the two, an entry left pending without its
      // content is dropped by the next reclaim; one acknowledged but not deleted would stay in the
      // stream for good, behind the group's position, counted in the backlog.
      pipeline.xdel(this.keys.stream, ...jobIds);
      pipeline.xack(this.keys.stream, WRITERS_GROUP, ...jobIds);
    }
    if (notices.length) pipeline.publish(channel, JSON.stringify(notices));
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  /** Takes over jobs idle for at least `minIdleMs`; those stalled more than `maxStalledCount` times go to the failed set. */
  async reclaim(consumer: string, minIdleMs: number, count: number, maxStalledCount: number): Promise<{ claimed: QueueEntry[]; failed: string[] }> {
    const reason = `job stalled more than ${maxStalledCount} time(s): its writer went quiet for longer than the lock (${minIdleMs} ms) each time`;
    const [claimed, failed] = (await RECLAIM.run(
      this.redis,
      [this.keys.stream, this.keys.failed, this.keys.failedAt],
      [WRITERS_GROUP, consumer, minIdleMs, Math.min(count, 1_000), maxStalledCount, Date.now(), reason],
    )) as [RawEntry[], string[]];
    return { claimed: claimed.map(entryOf), failed };
  }

  /** Restarts the idle time of jobs `consumer` still owns; returns those it still owns. */
  async heartbeat(consumer: string, jobIds: readonly string[]): Promise<string[]> {
    const mine: string[] = [];
    for (const ids of chunks(jobIds, IDS_PER_CALL)) mine.push(...((await HEARTBEAT.run(this.redis, [this.keys.stream], [WRITERS_GROUP, consumer, ...ids])) as string[]));
    return mine;
  }

  /** Hands back jobs `consumer` holds but will not finish, to be taken over at once without counting a stall; returns how many. */
  async release(consumer: string, jobIds: readonly string[], lockMs: number): Promise<number> {
    let released = 0;
    for (const ids of chunks(jobIds, IDS_PER_CALL)) released += (await RELEASE.run(this.redis, [this.keys.stream], [WRITERS_GROUP, consumer, lockMs, ...ids])) as number;
    return released;
  }

  /** Moves a job `consumer` holds to the failed set with `reason`; false when it is not that writer's any more (finished, failed, or taken over by another). */
  async fail(consumer: string, jobId: string, reason: string): Promise<boolean> {
    return (await FAIL.run(this.redis, [this.keys.stream, this.keys.failed, this.keys.failedAt], [WRITERS_GROUP, jobId, reason, Date.now(), consumer])) === 1;
  }

  /** Drops failed jobs past their retention, up to `limit`; returns how many. */
  async trimFailed(limit = 1_000, now = Date.now()): Promise<number> {
    return (await TRIM_FAILED.run(this.redis, [this.keys.failed, this.keys.failedAt], [now - FAILED_JOB_RETENTION_SECONDS * 1_000, limit])) as number;
  }

  async locate(readingId: string): Promise<LocatedReading | undefined> {
    const found = (await LOCATE.run(this.redis, [this.keys.readingKeys(readingId).pending, this.keys.stream, this.keys.failed], [])) as [string, string, string] | null;
    if (!found) return undefined;
    const [state, json, jobId] = found;
    if (state === 'queued') return { state, reading: (JSON.parse(json) as QueuedReading[]).find((r) => r.id === readingId), jobId };
    const record = JSON.parse(json) as Omit<FailedJob, 'id'>;
    return { state: 'failed', reading: record.readings.find((r) => r.id === readingId), reason: record.reason, jobId };
  }

  /** Jobs not yet committed: waiting and in a writer's hands (acknowledged jobs are deleted at once). */
  depth(): Promise<number> {
    return this.redis.xlen(this.keys.stream);
  }

  async counts(): Promise<QueueCounts> {
    const [length, pending, failed] = await Promise.all([
      this.redis.xlen(this.keys.stream),
      this.redis.xpending(this.keys.stream, WRITERS_GROUP).catch((err: unknown) => {
        if (isNoGroup(err)) return [0];
        throw err;
      }) as Promise<[number, ...unknown[]]>,
      this.redis.hlen(this.keys.failed),
    ]);
    const active = Number(pending[0]);
    // The two are read at once, not atomically: a read between them could make the difference negative.
    return { waiting: Math.max(0, length - active), active, failed };
  }

  /** The failed set, oldest first, a page at a time. */
  async failedJobs(offset = 0, limit = 100): Promise<FailedJob[]> {
    const ids = await this.redis.zrange(this.keys.failedAt, String(offset), String(offset + limit - 1));
    if (ids.length === 0) return [];
    const records = await this.redis.hmget(this.keys.failed, ...ids);
    return ids.flatMap((id, i) => (records[i] ? [{ id, ...(JSON.parse(records[i]) as Omit<FailedJob, 'id'>) }] : []));
  }

  /** Consumers (writers) that hold nothing and have been idle past `idleMs`: the names of writers that are gone. */
  async removeIdleConsumers(idleMs: number, except: string): Promise<number> {
    const consumers = (await this.redis.xinfo('CONSUMERS', this.keys.stream, WRITERS_GROUP)) as (string | number)[][];
    let removed = 0;
    for (const flat of consumers) {
      const c: Record<string, string | number> = {};
      for (let k = 0; k < flat.length; k += 2) c[String(flat[k])] = flat[k + 1]!;
      if (c.name !== except && Number(c.pending) === 0 && Number(c.idle) > idleMs) {
        await this.redis.xgroup('DELCONSUMER', this.keys.stream, WRITERS_GROUP, String(c.name));
        removed++;
      }
    }
    return removed;
  }
}
