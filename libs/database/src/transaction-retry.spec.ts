import type { QueryRunner } from 'typeorm';
import { describe, expect, it } from 'vitest';
import { classifyDbError } from './db-errors.js';
import {
  backoffDelay,
  inTransaction,
  isRetryableTransactionError,
  type QueryRunnerSource,
  type RetryNotice,
  TransactionRetriesExhaustedError,
  withRetries,
} from './transaction-retry.js';

function sqlError(code: string, message = `error ${code}`): Error {
  return Object.assign(new Error(message), { code });
}

/** A retry run with no real waiting: the waits are recorded instead. */
function fastOptions(maxAttempts = 5) {
  const waits: number[] = [];
  const notices: RetryNotice[] = [];
  return {
    waits,
    notices,
    options: {
      policy: { maxAttempts, baseDelayMs: 10, maxDelayMs: 1_000 },
      random: () => 0.5,
      sleep: (ms: number) => {
        waits.push(ms);
        return Promise.resolve();
      },
      onRetry: (n: RetryNotice) => notices.push(n),
    },
  };
}

describe('backoffDelay', () => {
  const policy = { maxAttempts: 10, baseDelayMs: 10, maxDelayMs: 1_000 };

  it('is a uniform draw below a ceiling that doubles per attempt (full jitter)', () => {
    expect(backoffDelay(1, policy, () => 0.999)).toBe(9);
    expect(backoffDelay(2, policy, () => 0.999)).toBe(19);
    expect(backoffDelay(4, policy, () => 0.999)).toBe(79);
    expect(backoffDelay(4, policy, () => 0)).toBe(0);
  });

  it('never exceeds the cap, even after many attempts', () => {
    for (let attempt = 1; attempt <= 100; attempt++) {
      const d = backoffDelay(attempt, policy, () => 0.9999);
      expect(d).toBeLessThan(1_000);
      expect(d).toBeGreaterThanOrEqual(0);
    }
  });

  it('spreads the waits of two conflicting transactions apart (random, not lockstep)', () => {
    const draws = new Set(Array.from({ length: 50 }, () => backoffDelay(6, policy)));
    expect(draws.size).toBeGreaterThan(10);
  });
});

describe('isRetryableTransactionError', () => {
  it.each(['40001', '40003', '40P01'])('retries %s, also through TypeORM\'s wrapper', (code) => {
    expect(isRetryableTransactionError(sqlError(code))).toBe(true);
    expect(isRetryableTransactionError({ message: 'Query failed', driverError: { code } })).toBe(true);
  });

  it.each(['23505', '22003', '57014', 'ECONNREFUSED', '08006'])('does not retry %s (not a transaction conflict)', (code) => {
    expect(isRetryableTransactionError(sqlError(code))).toBe(false);
  });
});

describe('withRetries', () => {
  it('returns at once on success: no wait, no notice', async () => {
    const { waits, notices, options } = fastOptions();
    await expect(withRetries(() => Promise.resolve('ok'), options)).resolves.toBe('ok');
    expect(waits).toEqual([]);
    expect(notices).toEqual([]);
  });

  it('runs again after 40001 and after 40003, reporting each retry', async () => {
    const { waits, notices, options } = fastOptions();
    const failures = [sqlError('40001'), sqlError('40003')];
    const attempts: number[] = [];
    const result = await withRetries((attempt) => {
      attempts.push(attempt);
      const next = failures.shift();
      return next ? Promise.reject(next) : Promise.resolve(attempt);
    }, options);
    expect(result).toBe(3);
    expect(attempts).toEqual([1, 2, 3]);
    expect(notices.map((n) => [n.attempt, n.code])).toEqual([
      [1, '40001'],
      [2, '40003'],
    ]);
    expect(waits).toEqual([5, 10]);
  });

  it('does not retry other errors: they reach the caller unchanged after one attempt', async () => {
    const { options } = fastOptions();
    const err = sqlError('22003');
    let calls = 0;
    await expect(
      withRetries(() => {
        calls++;
        return Promise.reject(err);
      }, options),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('is bounded: gives up after maxAttempts with a visible error naming the attempts and the SQLSTATE', async () => {
    const { notices, options } = fastOptions(4);
    let calls = 0;
    const failure = withRetries(() => {
      calls++;
      return Promise.reject(sqlError('40001', 'restart transaction: TransactionRetryWithProtoRefreshError'));
    }, options);
    await expect(failure).rejects.toBeInstanceOf(TransactionRetriesExhaustedError);
    const err = (await failure.catch((e: unknown) => e)) as TransactionRetriesExhaustedError;
    expect(calls).toBe(4);
    expect(notices).toHaveLength(3);
    expect(err.attempts).toBe(4);
    expect(err.sqlstate).toBe('40001');
    expect(err.message).toBe('transaction gave up after 4 attempts: SQLSTATE 40001: restart transaction: TransactionRetryWithProtoRefreshError');
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('hands the exhausted error to outer loops as not transient, so nobody starts retrying it again', async () => {
    const { options } = fastOptions(2);
    const err = await withRetries(() => Promise.reject(sqlError('40001')), options).catch((e: unknown) => e);
    expect(classifyDbError(err)).toBe('unknown');
  });

  it('takes its own notion of retryable errors when given one', async () => {
    const { options } = fastOptions();
    let calls = 0;
    await expect(
      withRetries(() => (++calls === 1 ? Promise.reject(sqlError('42P07')) : Promise.resolve('created')), { ...options, retryable: (e) => (e as { code?: string }).code === '42P07' }),
    ).resolves.toBe('created');
    expect(calls).toBe(2);
  });
});

/** A fake pool: records every statement per connection, and fails the statements it is told to. */
function fakeSource(failOn: (sql: string, attempt: number) => Error | undefined) {
  const log: string[][] = [];
  const released: number[] = [];
  const source: QueryRunnerSource = {
    createQueryRunner() {
      const index = log.length;
      const statements: string[] = [];
      log.push(statements);
      return {
        connect: () => Promise.resolve(),
        query: (sql: string) => {
          statements.push(sql);
          const err = failOn(sql, index + 1);
          return err ? Promise.reject(err) : Promise.resolve([]);
        },
        release: () => {
          released.push(index);
          return Promise.resolve();
        },
      } as unknown as QueryRunner;
    },
  };
  return { source, log, released };
}

describe('inTransaction', () => {
  it('runs BEGIN, the work and COMMIT on one connection, and releases it', async () => {
    const { source, log, released } = fakeSource(() => undefined);
    const result = await inTransaction(source, async (runner) => {
      await runner.query('INSERT 1');
      return 'done';
    });
    expect(result).toBe('done');
    expect(log).toEqual([['BEGIN', 'INSERT 1', 'COMMIT']]);
    expect(released).toEqual([0]);
  });

  it('asks for the isolation level in BEGIN when one is given', async () => {
    const { source, log } = fakeSource(() => undefined);
    await inTransaction(source, () => Promise.resolve(), { isolation: 'SERIALIZABLE' });
    expect(log[0]![0]).toBe('BEGIN ISOLATION LEVEL SERIALIZABLE');
  });

  it('on 40001 rolls back and runs the whole transaction again on a fresh connection', async () => {
    const { source, log, released } = fakeSource((sql, attempt) => (sql === 'INSERT' && attempt === 1 ? sqlError('40001') : undefined));
    const { options } = fastOptions();
    const attempts: number[] = [];
    await inTransaction(
      source,
      async (runner, attempt) => {
        attempts.push(attempt);
        await runner.query('SELECT');
        await runner.query('INSERT');
      },
      options,
    );
    expect(attempts).toEqual([1, 2]);
    expect(log).toEqual([
      ['BEGIN', 'SELECT', 'INSERT', 'ROLLBACK'],
      ['BEGIN', 'SELECT', 'INSERT', 'COMMIT'],
    ]);
    expect(released).toEqual([0, 1]);
  });

  it('on 40003 at COMMIT (the commit may have happened) runs the whole transaction again', async () => {
    const { source, log } = fakeSource((sql, attempt) => (sql === 'COMMIT' && attempt === 1 ? sqlError('40003', 'result is ambiguous') : undefined));
    const { notices, options } = fastOptions();
    await inTransaction(source, (runner) => runner.query('INSERT … ON CONFLICT DO NOTHING'), options);
    expect(log.map((l) => l.at(-1))).toEqual(['ROLLBACK', 'COMMIT']);
    expect(notices.map((n) => n.code)).toEqual(['40003']);
  });

  it('rolls back and rethrows any other error without another attempt', async () => {
    const { source, log, released } = fakeSource((sql) => (sql === 'INSERT' ? sqlError('22003') : undefined));
    await expect(inTransaction(source, (runner) => runner.query('INSERT'))).rejects.toMatchObject({ code: '22003' });
    expect(log).toEqual([['BEGIN', 'INSERT', 'ROLLBACK']]);
    expect(released).toEqual([0]);
  });

  it('sends no ROLLBACK when BEGIN itself failed (no transaction to end), and still releases', async () => {
    const { source, log, released } = fakeSource((sql) => (sql === 'BEGIN' ? sqlError('08006') : undefined));
    await expect(inTransaction(source, () => Promise.resolve())).rejects.toMatchObject({ code: '08006' });
    expect(log).toEqual([['BEGIN']]);
    expect(released).toEqual([0]);
  });

  it('stops after maxAttempts conflicts, every connection rolled back and released', async () => {
    const { source, log, released } = fakeSource((sql) => (sql === 'INSERT' ? sqlError('40001') : undefined));
    const { options } = fastOptions(3);
    await expect(inTransaction(source, (runner) => runner.query('INSERT'), options)).rejects.toBeInstanceOf(TransactionRetriesExhaustedError);
    expect(log).toHaveLength(3);
    expect(log.every((l) => l.at(-1) === 'ROLLBACK')).toBe(true);
    expect(released).toEqual([0, 1, 2]);
  });
});
