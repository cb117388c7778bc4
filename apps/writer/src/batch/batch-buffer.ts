import type { QueuedReading } from '#libs/readings';
import type { WriteOutcome } from './batch-writer.js';

interface Entry {
  readings: readonly QueuedReading[];
  /** Readings of this entry not yet handed to a flush. */
  next: number;
  /** Readings of this entry not yet committed. */
  outstanding: number;
  outcome: WriteOutcome;
  failed: boolean;
  resolve: (outcome: WriteOutcome) => void;
  reject: (err: unknown) => void;
}

export interface BatchBufferOptions {
  batchSize: number;
  /**
   * 0 (the default): group commit, no timer. A partial batch is written at once when no flush
   * is in flight, and gathers while one is. Above 0: a partial batch waits this long after its
   * first reading arrived (a fixed window, for bigger transactions at the cost of latency).
   */
  lingerMs: number;
  flushConcurrency: number;
}

export type FlushFn = (readings: QueuedReading[]) => Promise<WriteOutcome>;

/**
 * Gathers the readings of many queue jobs into database batches: a flush starts when
 * `batchSize` readings wait, or (group commit) when a partial batch waits and no flush is in
 * flight or one has just returned; with `lingerMs` above 0, a partial batch waits that long
 * instead. Each job's promise settles only when every one of its readings is committed, so a
 * job is completed in the queue only after COMMIT.
 */
export class BatchBuffer {
  private readonly entries: Entry[] = [];
  private waiting = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private idleWaiters: (() => void)[] = [];
  /** Set at shutdown: from then on no partial batch waits for the linger. */
  private draining = false;

  constructor(
    private readonly options: BatchBufferOptions,
    private readonly flush: FlushFn,
    /** Called once a flush has settled and the buffer's own state says so (after its jobs' promises settled). */
    private readonly onFlushSettled: () => void = () => undefined,
  ) {}

  add(readings: readonly QueuedReading[]): Promise<WriteOutcome> {
    if (readings.length === 0) return Promise.resolve({ stored: [], failed: [], collapsed: 0 });
    return new Promise<WriteOutcome>((resolve, reject) => {
      this.entries.push({
        readings,
        next: 0,
        outstanding: readings.length,
        outcome: { stored: [], failed: [], collapsed: 0 },
        failed: false,
        resolve,
        reject,
      });
      this.waiting += readings.length;
      this.schedule();
    });
  }

  get pendingReadings(): number {
    return this.waiting;
  }

  /** Nothing waits and nothing is being written. */
  get idle(): boolean {
    return this.waiting === 0 && this.inFlight === 0;
  }

  /** A partial batch waits out `lingerMs` with nothing being written: more readings may still join it. */
  get lingering(): boolean {
    return this.timer !== undefined && this.inFlight === 0;
  }

  /** Shutdown: write what is waiting now instead of after the linger. */
  flushPending(): void {
    this.draining = true;
    this.flushNow();
  }

  /** Resolves once nothing is waiting or being written. */
  whenIdle(): Promise<void> {
    if (this.waiting === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** `returned`: a flush has just completed, so one partial batch may go in its place. */
  private schedule(returned = false): void {
    if (this.waiting >= this.options.batchSize) {
      this.flushNow();
    } else if (this.waiting === 0) {
      return;
    } else if (this.options.lingerMs > 0 && !this.draining) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.flushNow();
      }, this.options.lingerMs);
    } else if (returned && this.inFlight < this.options.flushConcurrency) {
      this.startFlush(this.take());
    } else if (this.inFlight === 0) {
      // At the end of this event-loop turn, so jobs delivered in the same turn share a transaction.
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        if (this.inFlight === 0 && this.waiting > 0) this.startFlush(this.take());
      });
    }
  }

  private flushNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.inFlight < this.options.flushConcurrency && this.waiting > 0) {
      this.startFlush(this.take());
    }
  }

  private take(): { entry: Entry; from: number; to: number }[] {
    const parts: { entry: Entry; from: number; to: number }[] = [];
    let room = this.options.batchSize;
    while (room > 0 && this.entries.length > 0) {
      const entry = this.entries[0]!;
      const count = Math.min(room, entry.readings.length - entry.next);
      parts.push({ entry, from: entry.next, to: entry.next + count });
      entry.next += count;
      room -= count;
      this.waiting -= count;
      if (entry.next === entry.readings.length) this.entries.shift();
    }
    return parts;
  }

  private startFlush(parts: { entry: Entry; from: number; to: number }[]): void {
    this.inFlight++;
    const readings = parts.flatMap((p) => p.entry.readings.slice(p.from, p.to));
    this.flush(readings)
      .then((outcome) => {
        const stored = new Map(outcome.stored.map((s) => [s.id, s]));
        const failed = new Map(outcome.failed.map((f) => [f.id, f]));
        for (const { entry, from, to } of parts) {
          for (let i = from; i < to; i++) {
            const id = entry.readings[i]!.id;
            const s = stored.get(id);
            const f = failed.get(id);
            if (s) entry.outcome.stored.push(s);
            else if (f) entry.outcome.failed.push(f);
            else entry.outcome.collapsed++;
          }
          entry.outstanding -= to - from;
          if (entry.outstanding === 0 && !entry.failed) entry.resolve(entry.outcome);
        }
      })
      .catch((err: unknown) => {
        for (const { entry } of parts) {
          if (!entry.failed) {
            entry.failed = true;
            entry.reject(err);
          }
        }
      })
      .finally(() => {
        this.inFlight--;
        this.schedule(true);
        if (this.waiting === 0 && this.inFlight === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          waiters.forEach((w) => w());
        }
        this.onFlushSettled();
      });
  }
}
