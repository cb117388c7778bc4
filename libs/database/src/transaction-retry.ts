import { setTimeout as sleep } from 'node:timers/promises';
import type { QueryRunner } from 'typeorm';
import { errorCode, errorMessage } from './db-errors.js';

/**
 * SQLSTATEs after which the whole transaction is run again:
 * - 40001 serialization failure: CockroachDB's "restart transaction" (its default isolation is
 *   SERIALIZABLE), and PostgreSQL at SERIALIZABLE or REPEATABLE READ;
 * - 40003 statement completion unknown: CockroachDB's "result is ambiguous". The transaction may
 *   or may not have committed. Running it again is safe only because every write we make is
 *   idempotent (INSERT … ON CONFLICT DO NOTHING on the reading id);
 * - 40P01 deadlock detected: PostgreSQL aborted this transaction to break a cycle.
 */
export const RETRYABLE_TRANSACTION_CODES: ReadonlySet<string> = new Set(['40001', '40003', '40P01']);

export interface TransactionRetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_TRANSACTION_RETRY: TransactionRetryPolicy = { maxAttempts: 10, baseDelayMs: 10, maxDelayMs: 1_000 };

export interface RetryNotice {
  /** The attempt that failed (1 = the first). */
  attempt: number;
  code: string;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  policy?: TransactionRetryPolicy;
  /** Called before each wait; for logging and metrics. */
  onRetry?: (notice: RetryNotice) => void;
  /** Which errors start another attempt; 40001 / 40003 / 40P01 by default. */
  retryable?: (err: unknown) => boolean;
  /** Injected in unit tests; Math.random and a real timer otherwise. */
  random?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
}

/** The retries ran out: the error a caller sees, with the attempts made and the last SQLSTATE. */
export class TransactionRetriesExhaustedError extends Error {
  override readonly name = 'TransactionRetriesExhaustedError';
  /**
   * Deliberately not `code`: classifyDbError would call a 40001 "transient" and an outer loop
   * would start retrying again. Giving up here is the point of the bound.
   */
  readonly sqlstate: string;

  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    const sqlstate = errorCode(lastError) ?? 'unknown';
    super(`transaction gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}: SQLSTATE ${sqlstate}: ${errorMessage(lastError)}`, { cause: lastError });
    this.sqlstate = sqlstate;
  }
}

export function isRetryableTransactionError(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && RETRYABLE_TRANSACTION_CODES.has(code);
}

/**
 * Exponential backoff with full jitter: a uniform wait in [0, min(max, base·2^(attempt-1))].
 * Jitter spreads out transactions that conflicted with each other, so they do not collide again
 * in lockstep.
 */
export function backoffDelay(attempt: number, policy: TransactionRetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Runs `fn` until it succeeds, throws an error that is not a retryable transaction error, or has
 * failed `maxAttempts` times with retryable ones (then TransactionRetriesExhaustedError).
 * The first attempt costs nothing extra: no timer, no query, one try/catch.
 */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const policy = options.policy ?? DEFAULT_TRANSACTION_RETRY;
  const wait = options.sleep ?? sleep;
  const retryable = options.retryable ?? isRetryableTransactionError;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!retryable(err)) throw err;
      if (attempt >= policy.maxAttempts) throw new TransactionRetriesExhaustedError(attempt, err);
      const delayMs = backoffDelay(attempt, policy, options.random);
      options.onRetry?.({ attempt, code: errorCode(err) ?? 'unknown', delayMs, error: err });
      if (delayMs > 0) await wait(delayMs);
    }
  }
}

export type IsolationLevel = 'SERIALIZABLE' | 'REPEATABLE READ' | 'READ COMMITTED';

/** The part of a DataSource the transaction runner needs; tests wrap it to inject failures. */
export interface QueryRunnerSource {
  createQueryRunner(mode?: 'master' | 'slave'): QueryRunner;
}

export interface TransactionOptions extends RetryOptions {
  /** Unset: the database default (PostgreSQL READ COMMITTED, CockroachDB SERIALIZABLE). */
  isolation?: IsolationLevel;
}

/**
 * One transaction, run again from BEGIN on 40001 / 40003 / 40P01 with bounded, jittered backoff.
 *
 * BEGIN, COMMIT and ROLLBACK are sent as plain statements, never through TypeORM's
 * startTransaction/commitTransaction. TypeORM's CockroachDB query runner records every query of
 * an open transaction and replays them after a 40001 (typeorm#11772), and its commit has been
 * reported to swallow errors (typeorm#8474). Replaying recorded statements is wrong here: the
 * flags a batch stores depend on what its own SELECT read, so the whole unit of work must run
 * again. Each attempt takes its own connection from the pool, so a connection broken by the
 * failure is not reused.
 *
 * `work` must be safe to run more than once: with 40003 the previous attempt may have committed.
 */
export async function inTransaction<T>(
  source: QueryRunnerSource,
  work: (runner: QueryRunner, attempt: number) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const begin = options.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation}` : 'BEGIN';
  return withRetries(async (attempt) => {
    const runner = source.createQueryRunner('master');
    let begun = false;
    let committed = false;
    try {
      await runner.connect();
      await runner.query(begin);
      begun = true;
      const result = await work(runner, attempt);
      await runner.query('COMMIT');
      committed = true;
      return result;
    } catch (err) {
      // Also after a failed COMMIT: harmless when the server already ended the transaction, and
      // it never hands a connection back to the pool inside one.
      if (begun && !committed) await runner.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await runner.release().catch(() => undefined);
    }
  }, options);
}
