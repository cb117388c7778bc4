import type { DbBackend } from '#libs/config';
import type { QueuedReading, ReadingFlag } from '#libs/readings';
import { periodStartDate } from '#libs/readings';

/** A reading ready for the database, with its flags decided. */
export interface RowToStore {
  reading: QueuedReading;
  flags: ReadingFlag[];
}

export interface SqlStatement {
  text: string;
  values: unknown[];
}

/**
 * Every SQL difference between the backends lives behind this seam: the writer and the
 * read endpoints ask it for statements and never build SQL themselves.
 */
export interface SqlDialect {
  readonly backend: DbBackend;
  /** Multi-row insert that ignores ids already stored; array parameters, so no 65,535-parameter limit. */
  insertReadings(rows: readonly RowToStore[]): SqlStatement;
  /** For each (meter, period): the effective reading of the latest earlier period. */
  previousReadings(pairs: readonly { meterId: string; period: string }[]): SqlStatement;
  insertFailed(failures: readonly { id: string; meterId: string | null; payload: string; reason: string; sqlstate: string | null }[]): SqlStatement;
  readingById(id: string): SqlStatement;
  failedById(id: string): SqlStatement;
  /** What a set of stored readings hold, to compare with a resend the insert skipped. */
  storedValues(ids: readonly string[]): SqlStatement;
  /**
   * A meter's readings between two billing months. `stale` allows a slightly stale answer:
   * PostgreSQL gives the same SQL either way (the caller sends it to the read replica);
   * CockroachDB reads AS OF SYSTEM TIME follower_read_timestamp() from the nearest replica.
   * `clientId`: only the readings that client submitted (read:own).
   */
  meterReadings(meterId: string, fromPeriod: string, toPeriod: string, history: boolean, stale?: boolean, clientId?: string): SqlStatement;
  /**
   * How a read that may be stale is served: on a separate PostgreSQL read replica (its own
   * pool, DATABASE_REPLICA_URL), or by CockroachDB follower reads on the one pool.
   */
  readonly staleReads: 'replica' | 'follower-reads';
}

const READING_COLUMNS = `id::text AS id, meter_id, account_id, to_char(period, 'YYYY-MM') AS period, read_at, t1::text AS t1, t2::text AS t2, t3::text AS t3, source, flags, received_at, stored_at, request_id, client_id::text AS client_id`;

/**
 * One array per column, in the order of INSERT_COLUMNS: the insert's parameters for both
 * backends. Flags travel as one comma-joined string per row (the SQL splits them), because a
 * text[][] parameter would need every row's array to have the same length.
 */
function readingColumns(rows: readonly RowToStore[]): unknown[][] {
  const n = rows.length;
  const cols = Array.from({ length: 13 }, () => new Array<unknown>(n));
  rows.forEach(({ reading: r, flags }, i) => {
    cols[0]![i] = r.id;
    cols[1]![i] = r.meterId;
    cols[2]![i] = r.accountId ?? null;
    cols[3]![i] = periodStartDate(r.period);
    cols[4]![i] = r.readAt;
    cols[5]![i] = r.values.t1;
    cols[6]![i] = r.values.t2 ?? null;
    cols[7]![i] = r.values.t3 ?? null;
    cols[8]![i] = r.source ?? null;
    cols[9]![i] = flags.join(',');
    cols[10]![i] = r.receivedAt;
    cols[11]![i] = r.requestId ?? null;
    cols[12]![i] = r.clientId ?? null;
  });
  return cols;
}

function failedColumns(failures: Parameters<SqlDialect['insertFailed']>[0]): unknown[][] {
  return [failures.map((f) => f.id), failures.map((f) => f.meterId), failures.map((f) => f.payload), failures.map((f) => f.reason), failures.map((f) => f.sqlstate)];
}

export const postgresDialect: SqlDialect = {
  backend: 'postgres',
  staleReads: 'replica',

  insertReadings(rows) {
    const cols = readingColumns(rows);
    return {
      text: `INSERT INTO readings (id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id, client_id)
        SELECT id, meter_id, account_id, period, read_at, t1, t2, t3, source,
               CASE WHEN flags = '' THEN '{}'::text[] ELSE string_to_array(flags, ',') END, received_at, request_id, client_id
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::timestamptz[], $6::numeric[], $7::numeric[],
                    $8::numeric[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::uuid[])
          AS r(id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id, client_id)
        ON CONFLICT (id) DO NOTHING
        RETURNING id::text AS id, stored_at`,
      values: cols,
    };
  },

  previousReadings(pairs) {
    return {
      text: `SELECT q.meter_id, to_char(q.period, 'YYYY-MM') AS period, p.t1::text AS t1, p.t2::text AS t2, p.t3::text AS t3, p.read_at
        FROM unnest($1::text[], $2::date[]) AS q(meter_id, period)
        CROSS JOIN LATERAL (
          SELECT r.t1, r.t2, r.t3, r.read_at FROM readings r
          WHERE r.meter_id = q.meter_id AND r.period < q.period
          ORDER BY r.period DESC, r.received_at DESC, r.id DESC
          LIMIT 1
        ) p`,
      values: [pairs.map((p) => p.meterId), pairs.map((p) => periodStartDate(p.period))],
    };
  },

  insertFailed(failures) {
    return {
      text: `INSERT INTO failed_readings (id, meter_id, payload, reason, sqlstate)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
        ON CONFLICT (id) DO UPDATE SET reason = EXCLUDED.reason, sqlstate = EXCLUDED.sqlstate, failed_at = now()`,
      values: failedColumns(failures),
    };
  },

  readingById(id) {
    return { text: `SELECT ${READING_COLUMNS} FROM readings WHERE id = $1::uuid`, values: [id] };
  },

  failedById(id) {
    return { text: `SELECT id, meter_id, payload, reason, sqlstate, failed_at FROM failed_readings WHERE id = $1`, values: [id] };
  },

  storedValues(ids) {
    return { text: `SELECT id::text AS id, meter_id, account_id, read_at, t1::text AS t1, t2::text AS t2, t3::text AS t3, source FROM readings WHERE id = ANY($1::uuid[])`, values: [ids] };
  },

  meterReadings(meterId, fromPeriod, toPeriod, history, _stale, clientId) {
    const range = `meter_id = $1 AND period >= $2::date AND period <= $3::date${clientId ? ' AND client_id = $4::uuid' : ''}`;
    const values = [meterId, periodStartDate(fromPeriod), periodStartDate(toPeriod), ...(clientId ? [clientId] : [])];
    if (history) {
      return { text: `SELECT ${READING_COLUMNS} FROM readings WHERE ${range} ORDER BY period, received_at DESC, id DESC`, values };
    }
    return {
      text: `SELECT DISTINCT ON (period) ${READING_COLUMNS} FROM readings WHERE ${range} ORDER BY period, received_at DESC, id DESC`,
      values,
    };
  },
};

/**
 * CockroachDB spelling of the same columns. `substr(period::STRING, 1, 7)` rather than to_char:
 * a DATE cast to STRING is always ISO (YYYY-MM-DD) there, and it works on every version.
 */
const CRDB_READING_COLUMNS = `id::STRING AS id, meter_id, account_id, substr(period::STRING, 1, 7) AS period, read_at, t1::STRING AS t1, t2::STRING AS t2, t3::STRING AS t3, source, flags, received_at, stored_at, request_id, client_id::STRING AS client_id`;

/**
 * The AS OF SYSTEM TIME clause of a follower read. follower_read_timestamp() is "recent but old
 * enough to be served by the nearest replica" (about 4.2-4.8 s behind with default settings):
 * the analogue of the PostgreSQL read replica, never for read-your-writes.
 */
export const FOLLOWER_READ_CLAUSE = 'AS OF SYSTEM TIME follower_read_timestamp()';

/**
 * CockroachDB. Statement by statement the same shape as PostgreSQL (array parameters through
 * multi-argument unnest, ON CONFLICT (id) DO NOTHING, DISTINCT ON, a LATERAL join: CockroachDB
 * supports each of them), with its own type names and two real differences:
 * - stale reads are follower reads on the same pool (AS OF SYSTEM TIME), not a second database;
 * - INSERT … ON CONFLICT DO NOTHING, not UPSERT: UPSERT would overwrite a stored reading with a
 *   redelivered copy and return every row, and it is only faster on tables without secondary
 *   indexes (readings has one). Duplicates inside a batch are collapsed before either backend
 *   sees the statement (collapseById).
 * Retries (40001, 40003) are the caller's job: inTransaction in transaction-retry.ts.
 */
export const cockroachDialect: SqlDialect = {
  backend: 'cockroach',
  staleReads: 'follower-reads',

  insertReadings(rows) {
    return {
      text: `INSERT INTO readings (id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id, client_id)
        SELECT id, meter_id, account_id, period, read_at, t1, t2, t3, source,
               CASE WHEN flags = '' THEN ARRAY[]::STRING[] ELSE string_to_array(flags, ',') END, received_at, request_id, client_id
        FROM unnest($1::UUID[], $2::STRING[], $3::STRING[], $4::DATE[], $5::TIMESTAMPTZ[], $6::DECIMAL[], $7::DECIMAL[],
                    $8::DECIMAL[], $9::STRING[], $10::STRING[], $11::TIMESTAMPTZ[], $12::STRING[], $13::UUID[])
          AS r(id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id, client_id)
        ON CONFLICT (id) DO NOTHING
        RETURNING id::STRING AS id, stored_at`,
      values: readingColumns(rows),
    };
  },

  previousReadings(pairs) {
    return {
      text: `SELECT q.meter_id, substr(q.period::STRING, 1, 7) AS period, p.t1::STRING AS t1, p.t2::STRING AS t2, p.t3::STRING AS t3, p.read_at
        FROM unnest($1::STRING[], $2::DATE[]) AS q(meter_id, period)
        CROSS JOIN LATERAL (
          SELECT r.t1, r.t2, r.t3, r.read_at FROM readings AS r
          WHERE r.meter_id = q.meter_id AND r.period < q.period
          ORDER BY r.period DESC, r.received_at DESC, r.id DESC
          LIMIT 1
        ) AS p`,
      values: [pairs.map((p) => p.meterId), pairs.map((p) => periodStartDate(p.period))],
    };
  },

  insertFailed(failures) {
    return {
      text: `INSERT INTO failed_readings (id, meter_id, payload, reason, sqlstate)
        SELECT id, meter_id, payload, reason, sqlstate
        FROM unnest($1::STRING[], $2::STRING[], $3::STRING[], $4::STRING[], $5::STRING[]) AS f(id, meter_id, payload, reason, sqlstate)
        ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, sqlstate = excluded.sqlstate, failed_at = now()`,
      values: failedColumns(failures),
    };
  },

  readingById(id) {
    return { text: `SELECT ${CRDB_READING_COLUMNS} FROM readings WHERE id = $1::UUID`, values: [id] };
  },

  failedById(id) {
    return { text: `SELECT id, meter_id, payload, reason, sqlstate, failed_at FROM failed_readings WHERE id = $1`, values: [id] };
  },

  storedValues(ids) {
    return { text: `SELECT id::STRING AS id, meter_id, account_id, read_at, t1::STRING AS t1, t2::STRING AS t2, t3::STRING AS t3, source FROM readings WHERE id = ANY($1::UUID[])`, values: [ids] };
  },

  meterReadings(meterId, fromPeriod, toPeriod, history, stale = false, clientId) {
    // Qualified names: DISTINCT ON and ORDER BY would otherwise resolve "period" to the
    // YYYY-MM output column rather than the stored date.
    const from = `FROM readings${stale ? ` ${FOLLOWER_READ_CLAUSE}` : ''}`;
    const range = `WHERE readings.meter_id = $1 AND readings.period >= $2::DATE AND readings.period <= $3::DATE${clientId ? ' AND readings.client_id = $4::UUID' : ''}`;
    const order = `ORDER BY readings.period, readings.received_at DESC, readings.id DESC`;
    const values = [meterId, periodStartDate(fromPeriod), periodStartDate(toPeriod), ...(clientId ? [clientId] : [])];
    const select = history ? 'SELECT' : 'SELECT DISTINCT ON (readings.period)';
    return { text: `${select} ${CRDB_READING_COLUMNS} ${from} ${range} ${order}`, values };
  },
};

const DIALECTS: Record<DbBackend, SqlDialect> = { postgres: postgresDialect, cockroach: cockroachDialect };

export function dialectFor(backend: DbBackend): SqlDialect {
  const dialect = DIALECTS[backend] as SqlDialect | undefined;
  if (!dialect) throw new Error(`DB_BACKEND=${String(backend)}: no SQL dialect for this backend (expected postgres or cockroach)`);
  return dialect;
}
