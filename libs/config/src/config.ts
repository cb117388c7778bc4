import { assertTimeZone } from '#libs/readings';

export type DbBackend = 'postgres' | 'cockroach';

export interface AppConfig {
  http: { host: string; port: number; bodyLimitBytes: number; trustProxy: boolean | string; replicaName: string };
  redis: { url: string; commandTimeoutMs: number; keyPrefix: string };
  db: {
    backend: DbBackend;
    /** The database every write goes to: the PostgreSQL primary, or any CockroachDB node (COCKROACH_URL). */
    url: string;
    /** PostgreSQL only: a streaming read replica for meter history. CockroachDB uses follower reads instead. */
    replicaUrl?: string;
    poolSize: number;
    statementTimeoutMs: number;
    connectTimeoutMs: number;
    migrateOnStart: boolean;
    /** Client-side transaction retry on 40001/40003 (and 40P01): bounded attempts, exponential backoff with full jitter. */
    txRetry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  };
  intake: {
    /**
     * queue: the service. noop and naive exist only for the benchmark (npm run bench): noop answers
     * 202 without doing anything (the HTTP ceiling); naive inserts each reading synchronously
     * before answering, one row per request (the design this service replaces).
     */
    mode: IntakeMode;
    timeZone: string;
    maxAgeDays: number;
    batchLimit: number;
    highWaterJobs: number;
    /** Shed new intake with 503 while this process's event-loop delay (p99) is above this; 0 disables. */
    shedEventLoopDelayMs: number;
    /** Shed a /v1 request with 503 when it waited longer than this in the replica after nginx passed it on (X-Request-Start); 0 disables. */
    shedQueueTimeMs: number;
    backlogPollMs: number;
    /** A group of single submissions (one queue job) holds at most this many readings... */
    coalesceMaxReadings: number;
    /** ...and about this many bytes. */
    coalesceMaxBytes: number;
    waitTimeoutMs: number;
    idempotencyTtlSeconds: number;
    spikeKwhPerDay: number;
    /** Delivery attempts per job, set by the producer (API) on every job. */
    jobAttempts: number;
  };
  /** `syncMs`: how often each replica adds its counted hits to the shared counters in Redis. */
  rateLimit: { limit: number; windowMs: number; syncMs: number };
  /**
   * Client keys (apps/api/src/auth/). `cacheTtlMs`: how long a replica trusts a key the database
   * confirmed, the bound on how long a revoked key keeps working. `failuresPerWindow` requests
   * with a missing or bad key per address and `failureWindowMs` before that address gets 429.
   */
  auth: { cacheTtlMs: number; lookupTimeoutMs: number; failuresPerWindow: number; failureWindowMs: number; maxHeaderLength: number; lastUsedFlushMs: number };
  writer: {
    batchSize: number;
    lingerMs: number;
    concurrency: number;
    flushConcurrency: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
    retryMaxMs: number;
    healthPort: number;
    drainTimeoutMs: number;
  };
  log: { level: string; requests: boolean };
}

export const INTAKE_MODES = ['queue', 'noop', 'naive'] as const;
export type IntakeMode = (typeof INTAKE_MODES)[number];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  str(name: string, fallback: string): string {
    const raw = this.env[name];
    return raw === undefined || raw === '' ? fallback : raw;
  }

  optional(name: string): string | undefined {
    const raw = this.env[name];
    return raw === undefined || raw === '' ? undefined : raw;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
    this.problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`);
    return fallback;
  }

  /** true, false, or addresses/subnets of trusted proxies ('loopback', '10.0.0.0/8,127.0.0.1'). */
  trustProxy(name: string, fallback: string): boolean | string {
    const raw = this.str(name, fallback).trim();
    if (['true', '1', 'yes'].includes(raw.toLowerCase())) return true;
    if (['false', '0', 'no'].includes(raw.toLowerCase())) return false;
    const token = (t: string) => ['loopback', 'linklocal', 'uniquelocal'].includes(t) || /^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(t);
    if (!raw.split(',').every((t) => token(t.trim()))) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected true, false or a comma-separated list of proxy addresses`);
      return fallback;
    }
    return raw;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.str(name, fallback);
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  }

  url(name: string, fallback: string | undefined, protocols: readonly string[]): string | undefined {
    const raw = fallback === undefined ? this.optional(name) : this.str(name, fallback);
    if (raw === undefined) return undefined;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) throw new Error('protocol');
    } catch {
      this.problems.push(`${name}: expected a ${protocols.join(' or ')} URL`);
    }
    return raw;
  }
}

export const POSTGRES_DEFAULT_BATCH_SIZE = 500;
export const COCKROACH_DEFAULT_BATCH_SIZE = 100;
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/meter_intake';
const SQL_PROTOCOLS: readonly string[] = ['postgres:', 'postgresql:'];

/**
 * The connection settings of the chosen backend. PostgreSQL: DATABASE_URL (primary) and an
 * optional DATABASE_REPLICA_URL. CockroachDB: COCKROACH_URL (any node; DATABASE_URL is accepted
 * when COCKROACH_URL is unset), and no replica URL: its analogue is follower reads, so a replica
 * URL there is a mistake, not something to ignore silently.
 */
function databaseSettings(r: Reader, backend: DbBackend): { url: string; replicaUrl?: string } {
  if (backend === 'postgres') {
    return {
      url: r.url('DATABASE_URL', DEFAULT_DATABASE_URL, SQL_PROTOCOLS)!,
      replicaUrl: r.url('DATABASE_REPLICA_URL', undefined, SQL_PROTOCOLS),
    };
  }
  const url = r.url('COCKROACH_URL', undefined, SQL_PROTOCOLS) ?? r.url('DATABASE_URL', undefined, SQL_PROTOCOLS);
  if (url === undefined) {
    r.problems.push('DB_BACKEND=cockroach needs COCKROACH_URL (a postgresql:// URL of any CockroachDB node, e.g. postgresql://root@127.0.0.1:26257/meter_intake?sslmode=disable)');
  }
  if (r.optional('DATABASE_REPLICA_URL') !== undefined) {
    r.problems.push('DATABASE_REPLICA_URL is a PostgreSQL read replica and is not used with DB_BACKEND=cockroach (meter history uses follower reads); unset it');
  }
  return { url: url ?? '' };
}

/** Reads and validates every setting once; throws ConfigError listing every bad value. */
export function loadConfig(env: Env = process.env): AppConfig {
  const r = new Reader(env);
  const timeZone = r.str('BILLING_TIME_ZONE', 'Europe/Moscow');
  try {
    assertTimeZone(timeZone);
  } catch {
    r.problems.push(`BILLING_TIME_ZONE=${JSON.stringify(timeZone)}: not a known IANA time zone`);
  }
  const lockDurationMs = r.int('WRITER_LOCK_DURATION_MS', 30_000, 1_000, 600_000);
  const statementTimeoutMs = r.int('DB_STATEMENT_TIMEOUT_MS', 10_000, 100, 600_000);
  const backend = r.oneOf<DbBackend>('DB_BACKEND', 'postgres', ['postgres', 'cockroach']);
  const db = databaseSettings(r, backend);
  const config: AppConfig = {
    http: {
      host: r.str('HOST', '127.0.0.1'),
      port: r.int('PORT', 3000, 0, 65_535),
      bodyLimitBytes: r.int('HTTP_BODY_LIMIT_BYTES', 1_048_576, 1_024, 64 * 1_048_576),
      trustProxy: r.trustProxy('TRUST_PROXY', 'loopback'),
      replicaName: r.str('REPLICA_NAME', `api-${process.pid}`),
    },
    redis: {
      url: r.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:'])!,
      commandTimeoutMs: r.int('REDIS_COMMAND_TIMEOUT_MS', 1_000, 50, 60_000),
      keyPrefix: r.str('REDIS_PREFIX', 'mi'),
    },
    db: {
      backend,
      ...db,
      poolSize: r.int('DB_POOL_SIZE', 10, 1, 200),
      statementTimeoutMs,
      connectTimeoutMs: r.int('DB_CONNECT_TIMEOUT_MS', 3_000, 100, 60_000),
      migrateOnStart: r.bool('MIGRATE_ON_START', true),
      txRetry: {
        maxAttempts: r.int('DB_TX_RETRY_MAX_ATTEMPTS', 10, 1, 100),
        baseDelayMs: r.int('DB_TX_RETRY_BASE_MS', 10, 1, 10_000),
        maxDelayMs: r.int('DB_TX_RETRY_MAX_DELAY_MS', 1_000, 1, 60_000),
      },
    },
    intake: {
      mode: r.oneOf('INTAKE_MODE', 'queue', INTAKE_MODES),
      timeZone,
      maxAgeDays: r.int('READING_MAX_AGE_DAYS', 62, 1, 3_650),
      batchLimit: r.int('BATCH_LIMIT', 1_000, 1, 100_000),
      highWaterJobs: r.int('QUEUE_HIGH_WATER_JOBS', 50_000, 1, 10_000_000),
      shedEventLoopDelayMs: r.int('SHED_EVENT_LOOP_DELAY_MS', 250, 0, 60_000),
      // Off unless a deployment knows its clocks and its failover (npm start turns it on): nginx
      // keeps a request's first stamp when it retries it on another replica after a connect
      // timeout, and a replica whose clock runs ahead would refuse requests that did not wait.
      shedQueueTimeMs: r.int('SHED_QUEUE_TIME_MS', 0, 0, 60_000),
      backlogPollMs: r.int('BACKLOG_POLL_MS', 500, 50, 60_000),
      coalesceMaxReadings: r.int('COALESCE_MAX_READINGS', 200, 1, 10_000),
      coalesceMaxBytes: r.int('COALESCE_MAX_BYTES', 1_048_576, 1_024, 67_108_864),
      waitTimeoutMs: r.int('WAIT_TIMEOUT_MS', 5_000, 1, 120_000),
      idempotencyTtlSeconds: r.int('IDEMPOTENCY_TTL_SECONDS', 86_400, 60, 365 * 86_400),
      spikeKwhPerDay: r.int('SPIKE_KWH_PER_DAY', 500, 1, 1_000_000),
      jobAttempts: r.int('JOB_ATTEMPTS', 10, 1, 1_000),
    },
    rateLimit: {
      limit: r.int('RATE_LIMIT', 600, 1, 10_000_000),
      windowMs: r.int('RATE_LIMIT_WINDOW_MS', 60_000, 100, 86_400_000),
      syncMs: r.int('RATE_LIMIT_SYNC_MS', 100, 10, 10_000),
    },
    auth: {
      cacheTtlMs: r.int('AUTH_CACHE_TTL_MS', 5_000, 0, 300_000),
      lookupTimeoutMs: r.int('AUTH_LOOKUP_TIMEOUT_MS', 1_000, 50, 30_000),
      failuresPerWindow: r.int('AUTH_FAILURES_PER_WINDOW', 20, 1, 1_000_000),
      failureWindowMs: r.int('AUTH_FAILURE_WINDOW_MS', 60_000, 1_000, 3_600_000),
      maxHeaderLength: r.int('AUTH_MAX_HEADER_LENGTH', 256, 64, 8_192),
      lastUsedFlushMs: r.int('AUTH_LAST_USED_FLUSH_MS', 60_000, 1_000, 3_600_000),
    },
    writer: {
      // PostgreSQL: 500, measured (docs/PERFORMANCE.md). CockroachDB: 100, not measured here (no
      // binary on this machine); its docs say to find the size by measuring 10, 100 and 1000 rows,
      // and a smaller transaction redoes less work when a conflict (40001) makes it run again.
      batchSize: r.int('WRITER_BATCH_SIZE', backend === 'cockroach' ? COCKROACH_DEFAULT_BATCH_SIZE : POSTGRES_DEFAULT_BATCH_SIZE, 1, 20_000),
      lingerMs: r.int('WRITER_LINGER_MS', 0, 0, 10_000),
      concurrency: r.int('WRITER_CONCURRENCY', 64, 1, 10_000),
      flushConcurrency: r.int('WRITER_FLUSH_CONCURRENCY', 2, 1, 64),
      lockDurationMs,
      stalledIntervalMs: r.int('WRITER_STALLED_INTERVAL_MS', 30_000, 500, 600_000),
      maxStalledCount: r.int('WRITER_MAX_STALLED_COUNT', 1, 0, 100),
      retryMaxMs: r.int('WRITER_RETRY_MAX_MS', 60_000, 0, 3_600_000),
      healthPort: r.int('WRITER_HEALTH_PORT', 3100, 0, 65_535),
      drainTimeoutMs: r.int('WRITER_DRAIN_TIMEOUT_MS', 25_000, 100, 600_000),
    },
    log: {
      level: r.oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
      requests: r.bool('LOG_REQUESTS', true),
    },
  };
  if (config.db.txRetry.baseDelayMs > config.db.txRetry.maxDelayMs) {
    r.problems.push(`DB_TX_RETRY_BASE_MS (${config.db.txRetry.baseDelayMs}) must not be above DB_TX_RETRY_MAX_DELAY_MS (${config.db.txRetry.maxDelayMs})`);
  }
  if (statementTimeoutMs >= lockDurationMs) {
    // A statement that outlives the job lock lets a second writer take the same job while the
    // first still holds the transaction open; keep the timeout well inside the lock.
    r.problems.push(`DB_STATEMENT_TIMEOUT_MS (${statementTimeoutMs}) must be below WRITER_LOCK_DURATION_MS (${lockDurationMs})`);
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** For entry points: print every problem and exit instead of a stack trace. */
export function loadConfigOrExit(env: Env = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${JSON.stringify({ level: 'fatal', msg: err.message, problems: err.problems })}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

export const APP_CONFIG = Symbol('APP_CONFIG');
