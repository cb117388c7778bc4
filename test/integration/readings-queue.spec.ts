// The readings queue's scripts and commands against a real Redis: what the API, the writer and
// the failed set rely on, one behaviour at a time. The end-to-end faults (test/e2e/faults.spec.ts)
// show the same mechanisms with real processes.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort, RedisInstance } from '../../scripts/lib/stack.mjs';
import { type EnqueueItem, FAILED_JOB_RETENTION_SECONDS, PENDING_MARKER_TTL_SECONDS, ReadingsQueue } from '#libs/queue';
import type { QueuedReading } from '#libs/readings';
import { newReadingId } from '#libs/readings';

const stack = inject('stack');
const redis = new Redis(stack.redisUrl);
const reader = new Redis(stack.redisUrl);
let n = 0;
/** A queue of its own for each test: nothing one test leaves behind is seen by another. */
const freshQueue = () => new ReadingsQueue(redis, `rq-${process.pid}-${Date.now()}-${n++}`);

function reading(meter: string, t1 = 1): QueuedReading {
  return { id: newReadingId(), meterId: meter, readAt: '2026-11-20T00:00:00.000Z', values: { t1 }, period: '2026-11', receivedAt: '2026-11-20T00:00:01.000Z' };
}
const item = (r: QueuedReading, fingerprint = '', notify = false): EnqueueItem => ({ reading: r, fingerprint, notify });

afterAll(() => {
  redis.disconnect();
  reader.disconnect();
});

describe('enqueue', () => {
  it('adds one job for the group, with a marker per reading naming it, and the job is read back whole', async () => {
    const q = freshQueue();
    const [a, b, c] = [reading('A'), reading('B'), reading('C')];
    const { conflicts, jobId } = await q.enqueue([item(a), item(b, 'fp-b', true), item(c)], 60);
    expect(conflicts.size).toBe(0);
    expect(jobId).toMatch(/^\d+-\d+$/);
    expect(await q.counts()).toEqual({ waiting: 1, active: 0, failed: 0 });
    for (const r of [a, b, c]) expect(await redis.get(q.keys.pending(r.id))).toBe(jobId);
    // Longer than a failed job is kept, which counts from its failure, after the enqueue.
    expect(PENDING_MARKER_TTL_SECONDS).toBeGreaterThan(FAILED_JOB_RETENTION_SECONDS);
    expect(await redis.ttl(q.keys.pending(a.id))).toBeGreaterThan(PENDING_MARKER_TTL_SECONDS - 10);
    expect(await redis.get(q.keys.idempotency(b.id))).toBe('fp-b');
    expect(await redis.exists(q.keys.idempotency(a.id))).toBe(0);
    await q.ensureGroup();
    const [entry, ...more] = await q.read(reader, 'w1', 10);
    expect(more).toEqual([]);
    expect(entry).toEqual({ id: jobId, readings: [a, b, c], notify: [b.id] });
    expect(await q.counts()).toEqual({ waiting: 0, active: 1, failed: 0 });
  });

  it('refuses a reading whose key names another payload (409) and queues the rest; the same payload passes again', async () => {
    const q = freshQueue();
    const first = reading('A');
    await q.enqueue([item(first, 'fp-1')], 60);
    const other = { ...reading('B'), id: first.id };
    const fresh = reading('C');
    const { conflicts, jobId } = await q.enqueue([item(fresh), item(other, 'fp-2')], 60);
    expect([...conflicts]).toEqual([1]);
    await q.ensureGroup();
    const entries = await q.read(reader, 'w1', 10);
    expect(entries.map((e) => e.readings.map((r) => r.meterId))).toEqual([['A'], ['C']]);
    expect(entries[1]!.id).toBe(jobId);
    // The conflicting reading's marker still names the first job, not the refused one.
    expect(await redis.get(q.keys.pending(first.id))).toBe(entries[0]!.id);
    // A resend with the same fingerprint is queued again (the database keeps one row).
    expect((await q.enqueue([item(first, 'fp-1')], 60)).conflicts.size).toBe(0);
  });

  it('adds no job when every reading conflicts', async () => {
    const q = freshQueue();
    const r = reading('A');
    await q.enqueue([item(r, 'fp-1')], 60);
    const result = await q.enqueue([item({ ...reading('B'), id: r.id }, 'fp-2')], 60);
    expect([...result.conflicts]).toEqual([0]);
    expect(result.jobId).toBeUndefined();
    expect(await q.depth()).toBe(1);
  });

  it('jobs added before any writer made the group are read by it (the group starts at the stream\'s beginning)', async () => {
    const q = freshQueue();
    await q.enqueue([item(reading('early'))], 60);
    await q.ensureGroup();
    await q.ensureGroup(); // a second writer starting: no error, no reset
    expect((await q.read(reader, 'w1', 10)).map((e) => e.readings[0]!.meterId)).toEqual(['early']);
  });
});

describe('complete', () => {
  it('acknowledges and deletes the jobs and clears the markers in one round trip; the backlog is empty', async () => {
    const q = freshQueue();
    const rs = [reading('A'), reading('B')];
    await q.enqueue(rs.map((r) => item(r)), 60);
    await q.ensureGroup();
    const [entry] = await q.read(reader, 'w1', 10);
    expect(await q.locate(rs[0]!.id)).toMatchObject({ state: 'queued', reading: rs[0] });
    await q.complete([entry!.id], rs.map((r) => r.id), [], 'unused-channel');
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, failed: 0 });
    expect(await q.depth()).toBe(0);
    expect(await redis.exists(...rs.map((r) => q.keys.pending(r.id)))).toBe(0);
    expect(await q.locate(rs[0]!.id)).toBeUndefined();
  });

  it('blocks a read until a job arrives', async () => {
    const q = freshQueue();
    await q.ensureGroup();
    const pending = q.read(reader, 'w1', 10, 5_000);
    await new Promise((r) => setTimeout(r, 100));
    await q.enqueue([item(reading('late'))], 60);
    expect((await pending).map((e) => e.readings[0]!.meterId)).toEqual(['late']);
  });
});

describe('reclaim, heartbeat and the failed set', () => {
  it('takes over a quiet writer\'s job, and fails it when it stalls more than the allowed count', async () => {
    const q = freshQueue();
    const r = reading('A');
    await q.enqueue([item(r)], 60);
    await q.ensureGroup();
    const [entry] = await q.read(reader, 'w1', 10);
    // Not idle long enough yet: nothing to take.
    expect(await q.reclaim('w2', 60_000, 10, 1)).toEqual({ claimed: [], failed: [] });
    // First stall: taken over by w2.
    const first = await q.reclaim('w2', 0, 10, 1);
    expect(first.claimed.map((e) => e.id)).toEqual([entry!.id]);
    expect(first.claimed[0]!.readings).toEqual([r]);
    expect(first.failed).toEqual([]);
    // Second stall: more than 1, so it moves to the failed set, with its readings and the reason.
    const second = await q.reclaim('w3', 0, 10, 1);
    expect(second).toEqual({ claimed: [], failed: [entry!.id] });
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, failed: 1 });
    const [failed] = await q.failedJobs();
    expect(failed).toMatchObject({ id: entry!.id, deliveries: 2, readings: [r] });
    expect(failed!.reason).toMatch(/stalled more than 1 time/);
    expect(await q.locate(r.id)).toMatchObject({ state: 'failed', reading: r, reason: failed!.reason });
  });

  it('a heartbeat keeps only the writer\'s own jobs, and does not count as a delivery', async () => {
    const q = freshQueue();
    await q.enqueue([item(reading('A'))], 60);
    await q.enqueue([item(reading('B'))], 60);
    await q.ensureGroup();
    const [a, b] = await q.read(reader, 'w1', 10);
    const taken = await q.reclaim('w2', 0, 1, 5);
    expect(taken.claimed.map((e) => e.id)).toEqual([a!.id]);
    expect(await q.heartbeat('w1', [a!.id, b!.id])).toEqual([b!.id]);
    const pending = (await redis.xpending(q.keys.stream, 'writers', '-', '+', 10)) as [string, string, number, number][];
    expect(pending.map(([id, owner, , deliveries]) => [id, owner, deliveries])).toEqual([
      [a!.id, 'w2', 2],
      [b!.id, 'w1', 1],
    ]);
  });

  it('release hands a stopping writer\'s job back: another writer takes it over at once, and the takeover is no stall', async () => {
    const q = freshQueue();
    const r = reading('A');
    await q.enqueue([item(r)], 60);
    await q.ensureGroup();
    const [entry] = await q.read(reader, 'w1', 10);
    // Only the holder can hand it back.
    expect(await q.release('w2', [entry!.id], 60_000)).toBe(0);
    expect(await q.reclaim('w2', 60_000, 10, 0)).toEqual({ claimed: [], failed: [] });
    expect(await q.release('w1', [entry!.id], 60_000)).toBe(1);
    // Taken at once with the lock's idle time, and not failed although no stall is allowed.
    const taken = await q.reclaim('w2', 60_000, 10, 0);
    expect(taken.failed).toEqual([]);
    expect(taken.claimed.map((e) => e.readings)).toEqual([[r]]);
    const pending = (await redis.xpending(q.keys.stream, 'writers', '-', '+', 10)) as [string, string, number, number][];
    expect(pending.map(([, owner, , deliveries]) => [owner, deliveries])).toEqual([['w2', 1]]);
  });

  it('fail() moves a job to the failed set once, and only for the writer that holds it', async () => {
    const q = freshQueue();
    const r = reading('A');
    await q.enqueue([item(r)], 60);
    await q.ensureGroup();
    const [entry] = await q.read(reader, 'w1', 10);
    // Another writer's job (w1 holds it): not failed under it.
    expect(await q.fail('w2', entry!.id, 'not mine')).toBe(false);
    expect(await q.counts()).toEqual({ waiting: 0, active: 1, failed: 0 });
    expect(await q.fail('w1', entry!.id, 'relation "readings" does not exist')).toBe(true);
    expect(await q.fail('w1', entry!.id, 'again')).toBe(false);
    expect(await q.failedJobs()).toMatchObject([{ id: entry!.id, reason: 'relation "readings" does not exist', deliveries: 1, readings: [r] }]);
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, failed: 1 });
  });

  it('keeps failed jobs for the retention and drops them after it', async () => {
    const q = freshQueue();
    await q.enqueue([item(reading('A'))], 60);
    await q.ensureGroup();
    const [entry] = await q.read(reader, 'w1', 10);
    await q.fail('w1', entry!.id, 'x');
    const [failed] = await q.failedJobs();
    expect(await q.trimFailed(1_000, failed!.failedAt + FAILED_JOB_RETENTION_SECONDS * 1_000 - 1)).toBe(0);
    expect(await q.trimFailed(1_000, failed!.failedAt + FAILED_JOB_RETENTION_SECONDS * 1_000 + 1)).toBe(1);
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, failed: 0 });
  });

  it('forgets writers that are gone and hold nothing', async () => {
    const q = freshQueue();
    await q.enqueue([item(reading('A'))], 60);
    await q.ensureGroup();
    const [entry] = await q.read(reader, 'gone', 10);
    await q.read(reader, 'holding', 10);
    await q.complete([entry!.id], [], [], 'unused');
    await q.enqueue([item(reading('B'))], 60);
    await q.read(reader, 'holding', 10);
    expect(await q.removeIdleConsumers(-1, 'me')).toBe(1);
    const names = ((await redis.xinfo('CONSUMERS', q.keys.stream, 'writers')) as string[][]).map((c) => c[1]);
    expect(names).toEqual(['holding']);
  });
});

describe('Redis at maxmemory (noeviction)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mi-rq-oom-'));
  let own: RedisInstance | undefined;
  afterAll(async () => own?.stop());

  it('refuses the whole enqueue (no job, no marker, no idempotency record) while the writers read, take over, fail and acknowledge', async () => {
    mkdirSync(join(dir, 'redis'), { recursive: true });
    own = new RedisInstance(join(dir, 'redis'), await freePort(), join(dir, 'redis.log'));
    await own.start();
    const client = new Redis(own.url);
    const ownReader = new Redis(own.url);
    try {
      const q = new ReadingsQueue(client, 'oom');
      await q.ensureGroup();
      const [a, b, c, d] = [reading('A'), reading('B'), reading('C'), reading('D')];
      for (const r of [a, b, c, d]) await q.enqueue([item(r)], 60);
      const [held] = await q.read(ownReader, 'w1', 1);
      await client.set('filler', 'x'.repeat(2_000_000));
      const used = Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
      await client.config('SET', 'maxmemory', String(used - 1_000_000));
      const r = reading('refused');
      await expect(q.enqueue([item(r, 'fp')], 60)).rejects.toThrow(/OOM/);
      // A writer (re)starting now finds its group (Redis would refuse to create it at maxmemory).
      await expect(new ReadingsQueue(client, 'oom').ensureGroup()).resolves.toBeUndefined();
      expect(await client.exists(q.keys.idempotency(r.id), q.keys.pending(r.id))).toBe(0);
      expect(await q.depth()).toBe(4);
      expect(await q.locate(b.id)).toMatchObject({ state: 'queued', reading: b });
      // The writers' side goes on: read, heartbeat, take over, fail, acknowledge.
      const [next, last] = await q.read(ownReader, 'w1', 2);
      expect([next!.readings, last!.readings]).toEqual([[b], [c]]);
      expect(await q.heartbeat('w1', [held!.id])).toEqual([held!.id]);
      expect((await q.reclaim('w2', 0, 1, 5)).claimed.map((e) => e.id)).toEqual([held!.id]);
      expect(await q.fail('w1', next!.id, 'refused by the database')).toBe(true);
      await q.complete([held!.id, last!.id], [a.id, c.id], [], 'oom:stored');
      expect(await q.counts()).toEqual({ waiting: 1, active: 0, failed: 1 });
      expect(Number(/evicted_keys:(\d+)/.exec(await client.info('stats'))![1])).toBe(0);
    } finally {
      client.disconnect();
      ownReader.disconnect();
    }
  });
});
