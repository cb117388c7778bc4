import type { QueryRunner } from 'typeorm';
import type { DbBackend } from '#libs/config';
import type { QueuedReading } from '#libs/readings';
import { classifyDbError } from './db-errors.js';
import { withFlags } from './reading-flags.js';
import type { ReadingRow } from './reading-rows.js';
import { dialectFor, type RowToStore, type SqlDialect, type SqlStatement } from './sql-dialect.js';
import { inTransaction, type QueryRunnerSource, type TransactionOptions } from './transaction-retry.js';

/** Where an answer came from: PostgreSQL primary or read replica; CockroachDB follower read or leaseholder (current). */
export type ReadFrom = 'primary' | 'replica' | 'follower' | 'leaseholder';

/** What the database knows about one reading id. */
export type ReadingLookup = { status: 'stored'; row: ReadingRow } | { status: 'failed'; payload: string; reason: string; failedAt: Date } | undefined;

/** A reading the database refused, as it is recorded in failed_readings. */
export interface FailureRecord {
  id: string;
  meterId: string | null;
  payload: string;
  reason: string;
  sqlstate: string | null;
}

/** What a stored reading holds that its submitter chose: a resend with other values is a different reading. */
export type StoredValues = Pick<ReadingRow, 'id' | 'meter_id' | 'account_id' | 'read_at' | 't1' | 't2' | 't3' | 'source'>;

/** One open transaction of the store's: the handle its write statements run on. */
export type StoreTransaction = Pick<QueryRunner, 'query'>;

export interface ReadingStoreOptions {
  backend: DbBackend;
  /** A separate PostgreSQL read replica is configured (DATABASE_REPLICA_URL). */
  replica: boolean;
  /** Called when a stale read falls back from an unreachable replica to the primary. */
  onReplicaFallback?: (err: unknown) => void;
}

/**
 * The readings aggregate's one door to the database: every statement on `readings` and
 * `failed_readings` goes through here (built by the backend's SqlDialect), and so does the
 * choice of connection: the primary for read-your-writes and for writes, the PostgreSQL read
 * replica or a CockroachDB follower read for reads that may be a little stale. Controllers,
 * services and the writer call it and hold no query-runner code.
 *
 * Writes run inside a transaction the caller opens with `transaction()`: the writer decides the
 * retry policy and the isolation level, the store runs the statements.
 */
export class ReadingStore {
  private readonly dialect: SqlDialect;

  constructor(
    private readonly connections: QueryRunnerSource,
    private readonly options: ReadingStoreOptions,
  ) {
    this.dialect = dialectFor(options.backend);
  }

  /** One statement on its own connection (autocommit), released after. */
  private async run<T>(mode: 'master' | 'slave', statement: SqlStatement): Promise<T> {
    const runner = this.connections.createQueryRunner(mode);
    try {
      return (await runner.query(statement.text, statement.values)) as T;
    } finally {
      await runner.release();
    }
  }

  /** A round trip to the primary, for readiness checks. */
  async ping(): Promise<void> {
    await this.run('master', { text: 'SELECT 1', values: [] });
  }

  /** A reading by id, from the primary (read-your-writes): stored, recorded as failed, or unknown here. */
  async find(id: string): Promise<ReadingLookup> {
    const runner = this.connections.createQueryRunner('master');
    try {
      const byId = this.dialect.readingById(id);
      const [row] = (await runner.query(byId.text, byId.values)) as ReadingRow[];
      if (row) return { status: 'stored', row };
      const failedQ = this.dialect.failedById(id);
      const [failed] = (await runner.query(failedQ.text, failedQ.values)) as { payload: string; reason: string; failed_at: Date }[];
      return failed ? { status: 'failed', payload: failed.payload, reason: failed.reason, failedAt: failed.failed_at } : undefined;
    } finally {
      await runner.release();
    }
  }

  /**
   * A meter's readings between two billing months. Not `strong`: from a source that may lag a
   * little (the PostgreSQL read replica, falling back to the primary when the replica is
   * unreachable; or a CockroachDB follower read). `strong`: current data (the primary, or a
   * normal CockroachDB read served by the leaseholder).
   */
  async meterReadings(meterId: string, from: string, to: string, opts: { history: boolean; strong: boolean; clientId?: string }): Promise<{ rows: ReadingRow[]; readFrom: ReadFrom }> {
    const { history, strong, clientId } = opts;
    if (this.dialect.staleReads === 'follower-reads') {
      // One pool: the staleness is in the statement (AS OF SYSTEM TIME), not in the connection.
      return { rows: await this.run('master', this.dialect.meterReadings(meterId, from, to, history, !strong, clientId)), readFrom: strong ? 'leaseholder' : 'follower' };
    }
    const statement = this.dialect.meterReadings(meterId, from, to, history, false, clientId);
    if (!strong && this.options.replica) {
      try {
        return { rows: await this.run('slave', statement), readFrom: 'replica' };
      } catch (err) {
        if (classifyDbError(err) !== 'transient') throw err;
        // The replica is down or restarting: the primary can answer, only more expensively.
        this.options.onReplicaFallback?.(err);
      }
    }
    return { rows: await this.run('master', statement), readFrom: 'primary' };
  }

  /** One transaction on the primary, run again from BEGIN on a conflict (see inTransaction); `work` must be idempotent. */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return inTransaction(this.connections, work, options);
  }

  /** Each reading with its flags, decided against its meter's latest stored reading of an earlier period: one query for all. */
  withFlags(tx: StoreTransaction, readings: readonly QueuedReading[], spikeKwhPerDay: number): Promise<RowToStore[]> {
    return withFlags((text, values) => tx.query(text, values), this.dialect, readings, spikeKwhPerDay);
  }

  /** One multi-row insert; ids already stored are skipped. Returns the rows it inserted. */
  async insert(tx: StoreTransaction, rows: readonly RowToStore[]): Promise<{ id: string; stored_at: Date }[]> {
    const statement = this.dialect.insertReadings(rows);
    return (await tx.query(statement.text, statement.values)) as { id: string; stored_at: Date }[];
  }

  /**
   * Runs `work` under a savepoint. An error `recoverable` accepts is rolled back to the savepoint
   * and rethrown (the transaction goes on); any other error is rethrown at once, untouched, and
   * the whole transaction is rolled back by its runner (a 40001, a lost connection).
   */
  async savepoint<T>(tx: StoreTransaction, work: () => Promise<T>, recoverable: (err: unknown) => boolean): Promise<T> {
    await tx.query('SAVEPOINT one_reading');
    let result: T;
    try {
      result = await work();
    } catch (err) {
      if (recoverable(err)) await tx.query('ROLLBACK TO SAVEPOINT one_reading');
      throw err;
    }
    await tx.query('RELEASE SAVEPOINT one_reading');
    return result;
  }

  /** Records readings the database refused, with their reasons (the latest reason wins on a repeat). */
  /** The stored values of these ids (inside the writer's transaction), for the ones an insert skipped. */
  async storedValues(tx: StoreTransaction, ids: readonly string[]): Promise<StoredValues[]> {
    const statement = this.dialect.storedValues(ids);
    return (await tx.query(statement.text, statement.values)) as StoredValues[];
  }

  async recordFailures(tx: StoreTransaction, failures: readonly FailureRecord[]): Promise<void> {
    const statement = this.dialect.insertFailed(failures);
    await tx.query(statement.text, statement.values);
  }

  /**
   * INTAKE_MODE=naive (the benchmark's baseline): one reading's flags and insert, each statement
   * autocommitted on the pool, as an insert-per-request design would.
   */
  async storeOne(reading: QueuedReading, spikeKwhPerDay: number): Promise<{ row: RowToStore; storedAt?: Date }> {
    const runner = this.connections.createQueryRunner('master');
    try {
      const [row] = await this.withFlags(runner, [reading], spikeKwhPerDay);
      const [inserted] = await this.insert(runner, [row!]);
      return inserted ? { row: row!, storedAt: inserted.stored_at } : { row: row! };
    } finally {
      await runner.release();
    }
  }
}
