import { describe, it, expect } from 'vitest';
import type { QueuedReading } from '#libs/readings';
import { BatchBuffer, type BatchBufferOptions } from './batch-buffer.js';
import type { WriteOutcome } from './batch-writer.js';

let seq = 0;

/** `n` queued readings with unique ids, tagged with `job` in their meterId for readable failures. */
function readings(n: number, job = 'job'): QueuedReading[] {
  return Array.from({ length: n }, () => {
    seq++;
    return {
      id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
      meterId: `${job}-${seq}`,
      readAt: '2026-11-20T06:30:00.000Z',
      values: { t1: seq },
      period: '2026-11',
      receivedAt: '2026-11-20T06:31:00.000Z',
    };
  });
}

function storedAll(batch: readonly QueuedReading[]): WriteOutcome {
  return { stored: batch.map((r) => ({ id: r.id, flags: [], storedAt: '2026-11-20T06:31:01.000Z' })), failed: [], collapsed: 0 };
}

interface FlushCall {
  readings: QueuedReading[];
  resolve: (outcome?: WriteOutcome) => void;
  reject: (err: unknown) => void;
}

/** A flush function whose calls stay pending until the test settles them. */
function manualFlush() {
  const calls: FlushCall[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fn = (batch: QueuedReading[]): Promise<WriteOutcome> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise<WriteOutcome>((resolve, reject) => {
      calls.push({
        readings: batch,
        resolve: (outcome) => {
          inFlight--;
          resolve(outcome ?? storedAll(batch));
        },
        reject: (err) => {
          inFlight--;
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      });
    });
  };
  return {
    fn,
    calls,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

/** A flush function that commits everything after `delayMs`. */
function autoFlush(delayMs = 1) {
  const batches: QueuedReading[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fn = async (batch: QueuedReading[]): Promise<WriteOutcome> => {
    batches.push(batch);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(delayMs);
    inFlight--;
    return storedAll(batch);
  };
  return {
    fn,
    batches,
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets pending promise callbacks run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Tracks whether a promise has settled, without leaving a rejection unhandled. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown; rejected: boolean } = { settled: false, rejected: false };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.rejected = true;
      state.error = error;
    },
  );
  return state;
}

function ids(batch: readonly QueuedReading[]): string[] {
  return batch.map((r) => r.id);
}

function buffer(options: Partial<BatchBufferOptions>, flush: (batch: QueuedReading[]) => Promise<WriteOutcome>): BatchBuffer {
  return new BatchBuffer({ batchSize: 10, lingerMs: 20, flushConcurrency: 2, ...options }, flush);
}

describe('BatchBuffer', () => {
  it('resolves an empty add at once without flushing', async () => {
    const flush = manualFlush();
    const b = buffer({}, flush.fn);
    await expect(b.add([])).resolves.toEqual({ stored: [], failed: [], collapsed: 0 });
    expect(flush.calls).toHaveLength(0);
  });

  it('flushes as soon as batchSize readings wait, without waiting for linger', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 3, lingerMs: 60_000 }, flush.fn);
    const job = readings(3);
    const result = b.add(job);
    expect(flush.calls).toHaveLength(1);
    expect(ids(flush.calls[0]!.readings)).toEqual(ids(job));
    flush.calls[0]!.resolve();
    const outcome = await result;
    expect(outcome.stored.map((s) => s.id)).toEqual(ids(job));
    expect(outcome.failed).toEqual([]);
    expect(outcome.collapsed).toBe(0);
  });

  it('gathers several jobs into one batch once batchSize is reached', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 4, lingerMs: 60_000 }, flush.fn);
    const a = readings(2, 'a');
    const c = readings(2, 'c');
    const pa = b.add(a);
    expect(flush.calls).toHaveLength(0);
    const pc = b.add(c);
    expect(flush.calls).toHaveLength(1);
    expect(ids(flush.calls[0]!.readings)).toEqual([...ids(a), ...ids(c)]);
    flush.calls[0]!.resolve();
    expect((await pa).stored.map((s) => s.id)).toEqual(ids(a));
    expect((await pc).stored.map((s) => s.id)).toEqual(ids(c));
  });

  it('group commit (lingerMs 0): writes a partial batch at the end of the turn, with no timer', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 100, lingerMs: 0, flushConcurrency: 1 }, flush.fn);
    const a = readings(2, 'a');
    const c = readings(1, 'c');
    const pa = b.add(a);
    const pc = b.add(c);
    expect(flush.calls).toHaveLength(0);
    await settle();
    expect(flush.calls.map((call) => ids(call.readings))).toEqual([[...ids(a), ...ids(c)]]);
    flush.calls[0]!.resolve();
    await Promise.all([pa, pc]);
  });

  it('group commit: jobs arriving while a flush is in flight go together when it returns', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 100, lingerMs: 0, flushConcurrency: 2 }, flush.fn);
    const first = b.add(readings(1, 'first'));
    await settle();
    expect(flush.calls).toHaveLength(1);
    const later = [readings(2, 'x'), readings(3, 'y')];
    const pending = later.map((job) => b.add(job));
    await settle();
    await settle();
    // A second flush may run at once (flushConcurrency 2), but a partial batch waits for the first.
    expect(flush.calls).toHaveLength(1);
    expect(b.pendingReadings).toBe(5);
    flush.calls[0]!.resolve();
    await first;
    await settle();
    expect(flush.calls.map((call) => ids(call.readings))[1]).toEqual(later.flatMap(ids));
    flush.calls[1]!.resolve();
    await Promise.all(pending);
  });

  it('flushes fewer than batchSize readings after lingerMs', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 100, lingerMs: 20 }, flush.fn);
    const a = readings(2, 'a');
    const c = readings(1, 'c');
    const pa = track(b.add(a));
    const pc = track(b.add(c));
    expect(flush.calls).toHaveLength(0);
    expect(b.pendingReadings).toBe(3);
    await sleep(80);
    expect(flush.calls).toHaveLength(1);
    expect(ids(flush.calls[0]!.readings)).toEqual([...ids(a), ...ids(c)]);
    expect(b.pendingReadings).toBe(0);
    expect(pa.settled).toBe(false);
    flush.calls[0]!.resolve();
    await settle();
    expect(pa.settled && !pa.rejected).toBe(true);
    expect(pc.settled && !pc.rejected).toBe(true);
  });

  it('counts linger from the first reading, not the latest', async () => {
    const flush = autoFlush();
    const b = buffer({ batchSize: 1_000, lingerMs: 30 }, flush.fn);
    const jobs: Promise<WriteOutcome>[] = [];
    for (let i = 0; i < 12; i++) {
      jobs.push(b.add(readings(1)));
      await sleep(10);
    }
    // With a timer that restarted on every add, nothing would have been flushed yet.
    expect(flush.batches.length).toBeGreaterThan(0);
    await Promise.all(jobs);
  });

  it('splits a large entry across several flushes and resolves it only when every part committed', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 4, lingerMs: 5, flushConcurrency: 1 }, flush.fn);
    const job = readings(10);
    const result = track(b.add(job));

    expect(flush.calls).toHaveLength(1);
    expect(ids(flush.calls[0]!.readings)).toEqual(ids(job.slice(0, 4)));
    flush.calls[0]!.resolve();
    await settle();
    expect(result.settled).toBe(false);

    expect(flush.calls).toHaveLength(2);
    expect(ids(flush.calls[1]!.readings)).toEqual(ids(job.slice(4, 8)));
    flush.calls[1]!.resolve();
    await settle();
    expect(result.settled).toBe(false);

    await sleep(30); // the last 2 readings are fewer than batchSize: they wait for linger
    expect(flush.calls).toHaveLength(3);
    expect(ids(flush.calls[2]!.readings)).toEqual(ids(job.slice(8)));
    expect(result.settled).toBe(false);
    flush.calls[2]!.resolve();
    await settle();

    expect(result.settled).toBe(true);
    expect(result.rejected).toBe(false);
    expect(result.value!.stored.map((s) => s.id)).toEqual(ids(job));
  });

  it('fills a batch with the tail of one job and the head of the next', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 4, lingerMs: 60_000, flushConcurrency: 1 }, flush.fn);
    const a = readings(6, 'a');
    const c = readings(2, 'c');
    const pa = track(b.add(a));
    const pc = track(b.add(c));
    expect(flush.calls.map((call) => ids(call.readings))).toEqual([ids(a.slice(0, 4))]);
    flush.calls[0]!.resolve();
    await settle();
    expect(pa.settled).toBe(false);
    expect(flush.calls.map((call) => ids(call.readings))).toEqual([ids(a.slice(0, 4)), [...ids(a.slice(4)), ...ids(c)]]);
    flush.calls[1]!.resolve();
    await settle();
    expect(pa.settled && !pa.rejected).toBe(true);
    expect(pc.settled && !pc.rejected).toBe(true);
    expect(pa.value!.stored.map((s) => s.id)).toEqual(ids(a));
    expect(pc.value!.stored.map((s) => s.id)).toEqual(ids(c));
  });

  it('never has more than flushConcurrency flushes in flight', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 2, lingerMs: 5, flushConcurrency: 2 }, flush.fn);
    const jobs = [track(b.add(readings(7))), track(b.add(readings(4)))];
    expect(flush.calls).toHaveLength(2);
    expect(flush.inFlight).toBe(2);

    // Commit one batch at a time, always the oldest pending one.
    let committed = 0;
    for (let round = 0; round < 50 && !jobs.every((j) => j.settled); round++) {
      const pending = flush.calls.slice(committed);
      expect(pending.length).toBeLessThanOrEqual(2);
      if (pending.length > 0) {
        pending[0]!.resolve();
        committed++;
      }
      await sleep(10);
    }
    expect(flush.maxInFlight).toBe(2);
    expect(jobs.every((j) => j.settled && !j.rejected)).toBe(true);
    expect(flush.calls.flatMap((c) => c.readings)).toHaveLength(11);
    expect(flush.calls.length).toBe(6); // 11 readings in batches of at most 2
  });

  it('respects flushConcurrency under a load of many jobs', async () => {
    const flush = autoFlush(3);
    const b = buffer({ batchSize: 5, lingerMs: 2, flushConcurrency: 3 }, flush.fn);
    const jobs = Array.from({ length: 40 }, (_, i) => b.add(readings((i % 7) + 1)));
    const outcomes = await Promise.all(jobs);
    expect(flush.maxInFlight).toBeLessThanOrEqual(3);
    expect(flush.maxInFlight).toBeGreaterThan(1);
    for (const batch of flush.batches) expect(batch.length).toBeLessThanOrEqual(5);
    const all = flush.batches.flat();
    expect(new Set(ids(all)).size).toBe(all.length); // no reading written twice
    expect(outcomes.reduce((n, o) => n + o.stored.length, 0)).toBe(all.length);
  });

  it('rejects every job whose readings were in a failed flush, and only those', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 4, lingerMs: 60_000, flushConcurrency: 2 }, flush.fn);
    const a = track(b.add(readings(2, 'a')));
    const c = track(b.add(readings(2, 'c'))); // batch 1: a, c
    const d = track(b.add(readings(4, 'd'))); // batch 2: d
    expect(flush.calls).toHaveLength(2);

    const error = new Error('connection lost');
    flush.calls[0]!.reject(error);
    flush.calls[1]!.resolve();
    await settle();

    expect(a).toMatchObject({ settled: true, rejected: true, error });
    expect(c).toMatchObject({ settled: true, rejected: true, error });
    expect(d).toMatchObject({ settled: true, rejected: false });
  });

  it('rejects a split job when any of its parts fails, even if the others commit', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 4, lingerMs: 60_000, flushConcurrency: 2 }, flush.fn);
    const big = track(b.add(readings(8, 'big')));
    expect(flush.calls).toHaveLength(2);

    const error = new Error('deadlock');
    flush.calls[1]!.reject(error);
    await settle();
    expect(big).toMatchObject({ settled: true, rejected: true, error });

    flush.calls[0]!.resolve();
    await settle();
    expect(big).toMatchObject({ settled: true, rejected: true, error });
  });

  it('keeps working after a failed flush', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 2, lingerMs: 60_000, flushConcurrency: 1 }, flush.fn);
    const first = b.add(readings(2));
    flush.calls[0]!.reject(new Error('boom'));
    await expect(first).rejects.toThrow('boom');

    const next = readings(2);
    const second = b.add(next);
    expect(flush.calls).toHaveLength(2);
    flush.calls[1]!.resolve();
    expect((await second).stored.map((s) => s.id)).toEqual(ids(next));
    await expect(b.whenIdle()).resolves.toBeUndefined();
  });

  it('hands each job the outcome of its own readings: stored, failed or collapsed', async () => {
    const flush = manualFlush();
    const b = buffer({ batchSize: 6, lingerMs: 60_000 }, flush.fn);
    const a = readings(3, 'a');
    const c = readings(3, 'c');
    const pa = b.add(a);
    const pc = b.add(c);
    flush.calls[0]!.resolve({
      stored: [
        { id: a[0]!.id, flags: ['spike'], storedAt: '2026-11-20T06:31:01.000Z' },
        { id: c[0]!.id, flags: [] },
      ],
      failed: [
        { id: a[1]!.id, reason: 'invalid byte sequence' },
        { id: c[1]!.id, reason: 'numeric out of range' },
      ],
      collapsed: 2,
    });
    expect(await pa).toEqual({
      stored: [{ id: a[0]!.id, flags: ['spike'], storedAt: '2026-11-20T06:31:01.000Z' }],
      failed: [{ id: a[1]!.id, reason: 'invalid byte sequence' }],
      collapsed: 1,
    });
    expect(await pc).toEqual({
      stored: [{ id: c[0]!.id, flags: [] }],
      failed: [{ id: c[1]!.id, reason: 'numeric out of range' }],
      collapsed: 1,
    });
  });

  describe('whenIdle', () => {
    it('resolves at once when nothing is waiting or in flight', async () => {
      const b = buffer({}, manualFlush().fn);
      await expect(b.whenIdle()).resolves.toBeUndefined();
    });

    it('resolves only after everything waiting and in flight has been flushed', async () => {
      const flush = manualFlush();
      const b = buffer({ batchSize: 3, lingerMs: 10, flushConcurrency: 1 }, flush.fn);
      const jobs = [b.add(readings(3)), b.add(readings(2))];
      const idle = track(b.whenIdle());

      expect(flush.calls).toHaveLength(1);
      flush.calls[0]!.resolve();
      await settle();
      expect(idle.settled).toBe(false); // 2 readings still waiting for linger

      await sleep(40);
      expect(flush.calls).toHaveLength(2);
      expect(idle.settled).toBe(false); // the second flush is in flight
      flush.calls[1]!.resolve();
      await settle();

      expect(idle.settled).toBe(true);
      await Promise.all(jobs);
      expect(b.pendingReadings).toBe(0);
    });

    it('resolves after a failed flush too', async () => {
      const flush = manualFlush();
      const b = buffer({ batchSize: 2, lingerMs: 60_000 }, flush.fn);
      const job = track(b.add(readings(2)));
      const idle = track(b.whenIdle());
      flush.calls[0]!.reject(new Error('boom'));
      await settle();
      expect(job.rejected).toBe(true);
      expect(idle.settled).toBe(true);
    });

    it('resolves for every waiter', async () => {
      const flush = autoFlush(2);
      const b = buffer({ batchSize: 4, lingerMs: 5 }, flush.fn);
      const jobs = [b.add(readings(5)), b.add(readings(1))];
      await Promise.all([b.whenIdle(), b.whenIdle(), b.whenIdle()]);
      expect(flush.batches.flat()).toHaveLength(6);
      await Promise.all(jobs);
    });
  });
});
