import { describe, it, expect } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

/** Runs loadConfig expecting a ConfigError and returns its problems. */
function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error(`expected loadConfig(${JSON.stringify(env)}) to throw`);
}

describe('loadConfig: defaults', () => {
  const config = loadConfig({});

  it('has the documented intake defaults', () => {
    expect(config.intake).toMatchObject({
      timeZone: 'Europe/Moscow',
      maxAgeDays: 62,
      batchLimit: 1000,
      waitTimeoutMs: 5000,
      spikeKwhPerDay: 500,
    });
  });

  it('has the documented writer defaults', () => {
    expect(config.writer).toMatchObject({ batchSize: 500, lingerMs: 0, flushConcurrency: 2, lockDurationMs: 30_000 });
  });

  it('has sensible connection defaults', () => {
    expect(config.http.port).toBe(3000);
    expect(config.redis.url).toBe('redis://127.0.0.1:6379');
    expect(config.db.backend).toBe('postgres');
    expect(config.db.url).toMatch(/^postgres:\/\//);
    expect(config.db.replicaUrl).toBeUndefined();
  });

  it('leaves queue-time shedding off unless asked (npm start asks; a retry or a clock ahead would refuse healthy requests elsewhere)', () => {
    expect(loadConfig({}).intake.shedQueueTimeMs).toBe(0);
    expect(loadConfig({ SHED_QUEUE_TIME_MS: '100' }).intake.shedQueueTimeMs).toBe(100);
  });

  it('keeps the statement timeout below the job lock by default', () => {
    expect(config.db.statementTimeoutMs).toBeLessThan(config.writer.lockDurationMs);
  });

  it('treats empty strings as unset', () => {
    const c = loadConfig({ PORT: '', BILLING_TIME_ZONE: '', REDIS_URL: '', WRITER_BATCH_SIZE: '', DATABASE_REPLICA_URL: '' });
    expect(c.http.port).toBe(3000);
    expect(c.intake.timeZone).toBe('Europe/Moscow');
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.writer.batchSize).toBe(500);
    expect(c.db.replicaUrl).toBeUndefined();
  });
});

describe('loadConfig: valid overrides', () => {
  it('reads numbers, booleans, enums, URLs and a time zone', () => {
    const c = loadConfig({
      PORT: '8080',
      WRITER_BATCH_SIZE: '2000',
      WRITER_LINGER_MS: '15',
      BATCH_LIMIT: '5000',
      READING_MAX_AGE_DAYS: '30',
      BILLING_TIME_ZONE: 'Asia/Vladivostok',
      TRUST_PROXY: 'false',
      MIGRATE_ON_START: 'no',
      LOG_REQUESTS: 'ON',
      DB_BACKEND: 'postgres',
      REDIS_URL: 'rediss://cache.internal:6380/2',
      DATABASE_URL: 'postgresql://u:p@db:5432/meter',
      DATABASE_REPLICA_URL: 'postgres://replica/meter',
      LOG_LEVEL: 'debug',
    });
    expect(c.http.port).toBe(8080);
    expect(c.writer.batchSize).toBe(2000);
    expect(c.writer.lingerMs).toBe(15);
    expect(c.intake.batchLimit).toBe(5000);
    expect(c.intake.maxAgeDays).toBe(30);
    expect(c.intake.timeZone).toBe('Asia/Vladivostok');
    expect(c.http.trustProxy).toBe(false);
    expect(c.db.migrateOnStart).toBe(false);
    expect(c.log.requests).toBe(true);
    expect(c.db.backend).toBe('postgres');
    expect(c.redis.url).toBe('rediss://cache.internal:6380/2');
    expect(c.db.url).toBe('postgresql://u:p@db:5432/meter');
    expect(c.db.replicaUrl).toBe('postgres://replica/meter');
    expect(c.log.level).toBe('debug');
  });

  it('accepts the bounds of a range', () => {
    expect(loadConfig({ PORT: '0' }).http.port).toBe(0);
    expect(loadConfig({ PORT: '65535' }).http.port).toBe(65_535);
  });

  it('accepts a statement timeout just below the lock duration', () => {
    const c = loadConfig({ DB_STATEMENT_TIMEOUT_MS: '59999', WRITER_LOCK_DURATION_MS: '60000' });
    expect(c.db.statementTimeoutMs).toBe(59_999);
    expect(c.writer.lockDurationMs).toBe(60_000);
  });
});

describe('loadConfig: the database backend', () => {
  const cockroachUrl = 'postgresql://root@db-1:26257/meter_intake?sslmode=disable';

  it('selects CockroachDB with DB_BACKEND=cockroach and COCKROACH_URL', () => {
    const c = loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: cockroachUrl });
    expect(c.db.backend).toBe('cockroach');
    expect(c.db.url).toBe(cockroachUrl);
    expect(c.db.replicaUrl).toBeUndefined();
  });

  it('takes DATABASE_URL for CockroachDB when COCKROACH_URL is unset, and prefers COCKROACH_URL when both are set', () => {
    expect(loadConfig({ DB_BACKEND: 'cockroach', DATABASE_URL: cockroachUrl }).db.url).toBe(cockroachUrl);
    expect(loadConfig({ DB_BACKEND: 'cockroach', DATABASE_URL: 'postgres://other/db', COCKROACH_URL: cockroachUrl }).db.url).toBe(cockroachUrl);
  });

  it('ignores COCKROACH_URL with DB_BACKEND=postgres', () => {
    const c = loadConfig({ COCKROACH_URL: cockroachUrl });
    expect(c.db.backend).toBe('postgres');
    expect(c.db.url).toBe('postgres://postgres@127.0.0.1:5432/meter_intake');
  });

  it('refuses DB_BACKEND=cockroach without a URL: no default, never the PostgreSQL one', () => {
    expect(problemsOf({ DB_BACKEND: 'cockroach' })).toEqual([expect.stringMatching(/DB_BACKEND=cockroach needs COCKROACH_URL/)]);
  });

  it('refuses a replica URL with CockroachDB (follower reads are its read path)', () => {
    expect(problemsOf({ DB_BACKEND: 'cockroach', COCKROACH_URL: cockroachUrl, DATABASE_REPLICA_URL: 'postgres://replica/db' })).toEqual([
      expect.stringMatching(/DATABASE_REPLICA_URL.*not used with DB_BACKEND=cockroach/),
    ]);
  });

  it('refuses a COCKROACH_URL that is not a postgresql:// URL', () => {
    expect(problemsOf({ DB_BACKEND: 'cockroach', COCKROACH_URL: 'cockroach://db:26257' })).toEqual([expect.stringContaining('COCKROACH_URL')]);
  });

  it('defaults the writer batch to 500 rows on PostgreSQL and 100 on CockroachDB; WRITER_BATCH_SIZE overrides both', () => {
    expect(loadConfig({}).writer.batchSize).toBe(500);
    expect(loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: cockroachUrl }).writer.batchSize).toBe(100);
    expect(loadConfig({ DB_BACKEND: 'cockroach', COCKROACH_URL: cockroachUrl, WRITER_BATCH_SIZE: '1000' }).writer.batchSize).toBe(1000);
  });

  it('has bounded transaction retries by default and checks their settings', () => {
    expect(loadConfig({}).db.txRetry).toEqual({ maxAttempts: 10, baseDelayMs: 10, maxDelayMs: 1000 });
    expect(loadConfig({ DB_TX_RETRY_MAX_ATTEMPTS: '3', DB_TX_RETRY_BASE_MS: '50', DB_TX_RETRY_MAX_DELAY_MS: '200' }).db.txRetry).toEqual({
      maxAttempts: 3,
      baseDelayMs: 50,
      maxDelayMs: 200,
    });
    expect(problemsOf({ DB_TX_RETRY_MAX_ATTEMPTS: '0' })).toEqual([expect.stringContaining('DB_TX_RETRY_MAX_ATTEMPTS')]);
    expect(problemsOf({ DB_TX_RETRY_BASE_MS: '500', DB_TX_RETRY_MAX_DELAY_MS: '100' })).toEqual([expect.stringMatching(/DB_TX_RETRY_BASE_MS.*DB_TX_RETRY_MAX_DELAY_MS/)]);
  });
});

describe('loadConfig: invalid values', () => {
  it('throws a ConfigError with a readable message', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(/Invalid configuration[\s\S]*PORT/);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['WRITER_BATCH_SIZE', '0'],
    ['WRITER_FLUSH_CONCURRENCY', '65'],
    ['READING_MAX_AGE_DAYS', 'sixty'],
    ['BATCH_LIMIT', '100001'],
  ])('rejects %s=%s as an integer out of range', (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(name);
  });

  it('rejects DB_BACKEND=mysql', () => {
    expect(problemsOf({ DB_BACKEND: 'mysql' })).toEqual([expect.stringContaining('DB_BACKEND')]);
  });

  it('rejects an unknown time zone', () => {
    expect(problemsOf({ BILLING_TIME_ZONE: 'Nowhere/None' })).toEqual([expect.stringContaining('BILLING_TIME_ZONE')]);
  });

  it('rejects REDIS_URL with another protocol', () => {
    expect(problemsOf({ REDIS_URL: 'http://x' })).toEqual([expect.stringContaining('REDIS_URL')]);
  });

  it('rejects a REDIS_URL that is not a URL', () => {
    expect(problemsOf({ REDIS_URL: 'localhost:6379x' })).toEqual([expect.stringContaining('REDIS_URL')]);
  });

  it('rejects a DATABASE_URL with another protocol', () => {
    expect(problemsOf({ DATABASE_URL: 'mysql://db/meter' })).toEqual([expect.stringContaining('DATABASE_URL')]);
  });

  it('rejects a bad boolean', () => {
    expect(problemsOf({ LOG_REQUESTS: 'maybe' })).toEqual([expect.stringContaining('LOG_REQUESTS')]);
  });

  it('takes TRUST_PROXY as a boolean or a list of proxy addresses, loopback only by default', () => {
    expect(loadConfig({}).http.trustProxy).toBe('loopback');
    expect(loadConfig({ TRUST_PROXY: 'true' }).http.trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).http.trustProxy).toBe('10.0.0.0/8, 127.0.0.1');
    expect(problemsOf({ TRUST_PROXY: 'maybe' })).toEqual([expect.stringContaining('TRUST_PROXY')]);
  });

  it('rejects a bad log level', () => {
    expect(problemsOf({ LOG_LEVEL: 'verbose' })).toEqual([expect.stringContaining('LOG_LEVEL')]);
  });

  it('rejects DB_STATEMENT_TIMEOUT_MS equal to WRITER_LOCK_DURATION_MS', () => {
    const problems = problemsOf({ DB_STATEMENT_TIMEOUT_MS: '30000', WRITER_LOCK_DURATION_MS: '30000' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('DB_STATEMENT_TIMEOUT_MS');
    expect(problems[0]).toContain('WRITER_LOCK_DURATION_MS');
  });

  it('rejects DB_STATEMENT_TIMEOUT_MS above the default lock duration', () => {
    expect(problemsOf({ DB_STATEMENT_TIMEOUT_MS: '45000' })).toEqual([
      expect.stringMatching(/DB_STATEMENT_TIMEOUT_MS.*WRITER_LOCK_DURATION_MS/),
    ]);
  });

  it('rejects a lock duration at or below the default statement timeout', () => {
    expect(problemsOf({ WRITER_LOCK_DURATION_MS: '5000' })).toEqual([
      expect.stringMatching(/DB_STATEMENT_TIMEOUT_MS.*WRITER_LOCK_DURATION_MS/),
    ]);
  });

  it('reports several problems at once, one per variable', () => {
    const problems = problemsOf({
      PORT: 'abc',
      DB_BACKEND: 'mysql',
      BILLING_TIME_ZONE: 'Nowhere/None',
      DB_STATEMENT_TIMEOUT_MS: '40000',
      WRITER_LOCK_DURATION_MS: '40000',
      REDIS_URL: 'http://x',
    });
    expect(problems).toHaveLength(5);
    for (const name of ['PORT', 'DB_BACKEND', 'BILLING_TIME_ZONE', 'DB_STATEMENT_TIMEOUT_MS', 'REDIS_URL']) {
      expect(problems.some((p) => p.includes(name)), `a problem naming ${name} in ${JSON.stringify(problems)}`).toBe(true);
    }
  });

  it('lists every problem in the error message', () => {
    try {
      loadConfig({ PORT: 'abc', DB_BACKEND: 'mysql' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.name).toBe('ConfigError');
      expect(e.message).toContain('PORT');
      expect(e.message).toContain('DB_BACKEND');
    }
  });
});

describe('loadConfig: INTAKE_MODE', () => {
  it('defaults to the queue and accepts the benchmark-only modes', () => {
    expect(loadConfig({}).intake.mode).toBe('queue');
    expect(loadConfig({ INTAKE_MODE: 'naive' }).intake.mode).toBe('naive');
    expect(loadConfig({ INTAKE_MODE: 'noop' }).intake.mode).toBe('noop');
  });

  it('refuses anything else', () => {
    expect(problemsOf({ INTAKE_MODE: 'direct' })).toEqual(['INTAKE_MODE="direct": expected one of queue, noop, naive']);
  });
});
