/** What the writer should do with a database error. */
export type DbErrorClass = 'transient' | 'data' | 'unknown';

const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization failure (CockroachDB retry, SERIALIZABLE conflicts)
  '40P01', // deadlock detected
  '40003', // statement completion unknown: safe to retry only because writes are idempotent
  '57014', // query canceled (statement_timeout)
  '57P01', // admin shutdown
  '57P02', // crash shutdown
  '57P03', // cannot connect now (starting up, recovery)
  '53300', // too many connections
  '53400', // configuration limit exceeded
  '55P03', // lock not available
  '58000', // system error
  '58030', // io error
]);

const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'ENETUNREACH']);

const TRANSIENT_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'Connection is closed',
  'the database system is',
  'terminating connection',
  'server closed the connection',
];

/** SQLSTATE or Node error code, looking through TypeORM's QueryFailedError wrapper. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; driverError?: { code?: unknown } };
  const code = e.driverError?.code ?? e.code;
  return typeof code === 'string' ? code : undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Transient errors are retried with backoff (the database is restarting, busy or a
 * transaction lost a conflict); data errors mean one row is bad and must be isolated;
 * anything else fails the batch and lets the queue retry the job later.
 */
export function classifyDbError(err: unknown): DbErrorClass {
  const code = errorCode(err);
  if (code) {
    if (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code) || code.startsWith('08')) return 'transient';
    if (code.startsWith('22') || code.startsWith('23')) return 'data';
  }
  const message = errorMessage(err);
  if (TRANSIENT_MESSAGES.some((m) => message.includes(m))) return 'transient';
  return 'unknown';
}

/**
 * The database cannot answer right now (down, restarting, not yet connected): callers answer
 * 503 with Retry-After rather than 500.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (classifyDbError(err) === 'transient') return true;
  const name = err instanceof Error ? err.name : '';
  return name === 'CannotExecuteNotConnectedError' || name === 'ConnectionIsNotSetError' || name === 'DatabaseNotConnectedError';
}
