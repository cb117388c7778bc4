import { setTimeout as sleep } from 'node:timers/promises';
import {
  classifyDbError,
  errorCode,
  errorMessage,
  type IsolationLevel,
  isRetryableTransactionError,
  type FailureRecord,
  type ReadingStore,
  type RetryNotice,
  type RowToStore,
  type StoredValues,
  type StoreTransaction,
  TransactionRetriesExhaustedError,
  type TransactionRetryPolicy,
} from '#libs/database';
import type { Logger, WriterMetrics } from '#libs/observability';
import { collapseById, type QueuedReading, type ReadingFlag } from '#libs/readings';

export interface StoredOutcome {
  id: string;
  flags: ReadingFlag[];
  /** Set when this write inserted the row; absent when it was already stored (a redelivery or resend). */
  storedAt?: string;
}

export interface FailedOutcome {
  id: string;
  reason: string;
}

export interface WriteOutcome {
  stored: StoredOutcome[];
  failed: FailedOutcome[];
  /** Readings repeated inside the batch, collapsed before the statement. */
  collapsed: number;
}

/** A reading as failed_readings keeps it. The raw payload may hold what the database refused (a NUL byte): the meter id is kept escaped. */
function failureRecord(reading: QueuedReading, reason: string, sqlstate: string | null): FailureRecord {
  return { id: reading.id, meterId: JSON.stringify(reading.meterId).slice(1, -1), payload: JSON.stringify(reading), reason, sqlstate };
}

const numberOrNull = (text: string | null) => (text === null ? null : Number(text));

/** What a client chose (what its key's fingerprint covers), compared as the database holds it (numeric text, timestamptz). */
function holdsSameValues(row: StoredValues, r: QueuedReading): boolean {
  return (
    row.meter_id === r.meterId &&
    (row.account_id ?? null) === (r.accountId ?? null) &&
    (row.source ?? null) === (r.source ?? null) &&
    row.read_at.getTime() === Date.parse(r.readAt) &&
    Number(row.t1) === r.values.t1 &&
    numberOrNull(row.t2) === (r.values.t2 ?? null) &&
    numberOrNull(row.t3) === (r.values.t3 ?? null)
  );
}

export interface BatchWriterOptions {
  spikeKwhPerDay: number;
  /** How long transient errors (the database down or restarting) are retried in-process before the batch fails back to the queue. */
  retryMaxMs: number;
  retryBaseMs?: number;
  retryCapMs?: number;
  /** Conflicts (40001, 40003, 40P01): the whole transaction runs again, up to maxAttempts, with jittered backoff. */
  txRetry?: TransactionRetryPolicy;
  /** Unset: the database's default (PostgreSQL READ COMMITTED, CockroachDB SERIALIZABLE). */
  isolation?: IsolationLevel;
}

/**
 * Writes a batch of readings in one transaction with one multi-row insert. The reading id is
 * the primary key and conflicts are ignored, so writing the same batch twice (a redelivered
 * job) stores nothing new. A row the database rejects is isolated and recorded in
 * failed_readings; the rest of the batch commits.
 *
 * Two retry layers, for two different failures:
 * - inTransaction re-runs the whole transaction (flags lookup and insert) on 40001 / 40003 /
 *   40P01, a bounded number of times with jittered backoff. CockroachDB (SERIALIZABLE) reports
 *   conflicts between concurrent batches this way; PostgreSQL at its default READ COMMITTED
 *   rarely does, and there the layer costs one try/catch. When the attempts run out, the batch
 *   fails with TransactionRetriesExhaustedError and its jobs go back to the queue;
 * - write() retries transient errors (connection refused, restart, statement timeout) for up to
 *   retryMaxMs, so a short database outage does not fail jobs.
 */
export class BatchWriter {
  constructor(
    private readonly store: ReadingStore,
    private readonly options: BatchWriterOptions,
    private readonly logger: Logger,
    private readonly metrics?: WriterMetrics,
  ) {}

  async write(readings: readonly QueuedReading[]): Promise<WriteOutcome> {
    const { unique, duplicates } = collapseById(readings);
    const started = performance.now();
    const deadline = Date.now() + this.options.retryMaxMs;
    let delay = this.options.retryBaseMs ?? 100;
    const cap = this.options.retryCapMs ?? 5_000;
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await this.writeOnce(unique);
        outcome.collapsed = duplicates;
        this.metrics?.batchSize.observe(unique.length);
        this.metrics?.writeDuration.observe((performance.now() - started) / 1000);
        return outcome;
      } catch (err) {
        const kind = classifyDbError(err);
        // A conflict that survived inTransaction's attempts is not retried again here: that bound is the point.
        if (kind !== 'transient' || isRetryableTransactionError(err) || Date.now() + delay > deadline) {
          this.metrics?.failures.inc({ kind: 'batch' });
          if (err instanceof TransactionRetriesExhaustedError) {
            this.logger.error({ attempts: err.attempts, code: err.sqlstate, err: err.message, readings: unique.length }, 'transaction conflicts did not clear; the batch goes back to the queue');
          }
          throw err;
        }
        this.metrics?.failures.inc({ kind: 'transient' });
        this.logger.warn({ attempt, delayMs: delay, code: errorCode(err), err: errorMessage(err), readings: unique.length }, 'transient database error, retrying batch');
        await sleep(delay);
        delay = Math.min(delay * 2, cap);
      }
    }
  }

  private async writeOnce(rows: readonly QueuedReading[]): Promise<WriteOutcome> {
    let outcome: WriteOutcome;
    try {
      outcome = await this.transaction(async (tx) => {
        const toStore = await this.store.withFlags(tx, rows, this.options.spikeKwhPerDay);
        const inserted = await this.store.insert(tx, toStore);
        const { kept, failed } = await this.refuseLateConflicts(tx, toStore, inserted);
        return this.outcomeOf(kept, inserted, failed);
      });
    } catch (err) {
      if (classifyDbError(err) !== 'data') throw err;
      this.logger.warn({ code: errorCode(err), err: errorMessage(err), readings: rows.length }, 'batch rejected by the database, isolating bad readings');
      outcome = await this.transaction((tx) => this.isolate(tx, rows));
    }
    this.metrics?.rowsWritten.inc(outcome.stored.filter((s) => s.storedAt).length);
    this.metrics?.duplicatesSkipped.inc(outcome.stored.filter((s) => !s.storedAt).length);
    if (outcome.failed.length) this.metrics?.readingsFailed.inc(outcome.failed.length);
    return outcome;
  }

  /** A transaction re-run from the start on 40001 / 40003 / 40P01; `work` is idempotent (ON CONFLICT DO NOTHING). */
  private transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return this.store.transaction(work, {
      ...(this.options.txRetry ? { policy: this.options.txRetry } : {}),
      ...(this.options.isolation ? { isolation: this.options.isolation } : {}),
      onRetry: (notice) => this.onTransactionRetry(notice),
    });
  }

  private onTransactionRetry({ attempt, code, delayMs, error }: RetryNotice): void {
    this.metrics?.transactionRetries.inc({ code });
    this.logger.warn({ attempt, code, delayMs, err: errorMessage(error) }, 'transaction conflict, running the batch again');
  }

  /** Row by row under savepoints: only reached when the database refused the batch for its data. */
  private async isolate(tx: StoreTransaction, rows: readonly QueuedReading[]): Promise<WriteOutcome> {
    const stored: RowToStore[] = [];
    const inserted: { id: string; stored_at: Date }[] = [];
    const failures: { reading: QueuedReading; reason: string; sqlstate: string | null }[] = [];
    for (const reading of rows) {
      try {
        const [row, rows] = await this.store.savepoint(
          tx,
          async () => {
            const [flagged] = await this.store.withFlags(tx, [reading], this.options.spikeKwhPerDay);
            return [flagged!, await this.store.insert(tx, [flagged!])] as const;
          },
          (err) => classifyDbError(err) === 'data',
        );
        stored.push(row);
        inserted.push(...rows);
      } catch (err) {
        if (classifyDbError(err) !== 'data') throw err;
        failures.push({ reading, reason: errorMessage(err), sqlstate: errorCode(err) ?? null });
      }
    }
    if (failures.length) {
      for (const f of failures) {
        this.logger.error({ readingId: f.reading.id, requestId: f.reading.requestId, sqlstate: f.sqlstate, reason: f.reason }, 'reading isolated as failed');
      }
      await this.store.recordFailures(
        tx,
        failures.map((f) => failureRecord(f.reading, f.reason, f.sqlstate)),
      );
    }
    const { kept, failed } = await this.refuseLateConflicts(tx, stored, inserted);
    return this.outcomeOf(kept, inserted, [...failures.map((f) => ({ id: f.reading.id, reason: f.reason })), ...failed]);
  }

  /**
   * A keyed reading whose id was already stored with other values: its client reused an
   * Idempotency-Key after Redis forgot it (IDEMPOTENCY_TTL_SECONDS), so the API could not answer
   * 409 and acknowledged it. The stored row keeps its first values; the newer reading is recorded
   * in failed_readings with the reason, so the 202 still ends as a visible failure, never as
   * nothing. A redelivered job or an honest resend has the same values and passes. Costs a query
   * only when the insert skipped a row.
   */
  private async refuseLateConflicts(tx: StoreTransaction, rows: readonly RowToStore[], inserted: readonly { id: string }[]): Promise<{ kept: RowToStore[]; failed: FailedOutcome[] }> {
    if (inserted.length === rows.length) return { kept: [...rows], failed: [] };
    const insertedIds = new Set(inserted.map((r) => r.id));
    const skipped = rows.filter((r) => !insertedIds.has(r.reading.id));
    const stored = new Map((await this.store.storedValues(tx, skipped.map((r) => r.reading.id))).map((v) => [v.id, v]));
    const conflicting = new Set(skipped.filter((r) => stored.has(r.reading.id) && !holdsSameValues(stored.get(r.reading.id)!, r.reading)).map((r) => r.reading.id));
    if (conflicting.size === 0) return { kept: [...rows], failed: [] };
    const reason = 'idempotency key reused with different values after the idempotency window; the reading stored under this key keeps its first values';
    const refused = rows.filter((r) => conflicting.has(r.reading.id));
    for (const r of refused) this.logger.error({ readingId: r.reading.id, requestId: r.reading.requestId, reason }, 'late idempotency conflict recorded as failed');
    await this.store.recordFailures(
      tx,
      refused.map((r) => failureRecord(r.reading, reason, null)),
    );
    return { kept: rows.filter((r) => !conflicting.has(r.reading.id)), failed: refused.map((r) => ({ id: r.reading.id, reason })) };
  }

  private outcomeOf(rows: readonly RowToStore[], inserted: { id: string; stored_at: Date }[], failed: FailedOutcome[]): WriteOutcome {
    const storedAt = new Map(inserted.map((r) => [r.id, r.stored_at.toISOString()]));
    return {
      stored: rows.map((r) => {
        const at = storedAt.get(r.reading.id);
        return at ? { id: r.reading.id, flags: r.flags, storedAt: at } : { id: r.reading.id, flags: r.flags };
      }),
      failed,
      collapsed: 0,
    };
  }
}
