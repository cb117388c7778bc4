import type { DbBackend } from '../../config/src/index.js';
import type { QueuedReading, ReadingFlag } from '../../readings/src/index.js';
import { periodStartDate } from '../../readings/src/index.js';

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
  meterReadings(meterId: string, fromPeriod: string, toPeriod: string, history: boolean): SqlStatement;
  /** Serialises migration runs across replicas starting at once; undefined where the backend has no such lock. */
  migrationLock?: { lock: string; unlock: string };
}

const READING_COLUMNS = `id::text AS id, meter_id, account_id, to_char(period, 'YYYY-MM') AS period, read_at, t1::text AS t1, t2::text AS t2, t3::text AS t3, source, flags, received_at, stored_at, request_id`;

/** Advisory lock key for migrations: an arbitrary constant shared by every replica. */
const MIGRATION_LOCK_KEY = 7_243_100_215;

export const postgresDialect: SqlDialect = {
  backend: 'postgres',

  insertReadings(rows) {
    const n = rows.length;
    const cols = Array.from({ length: 12 }, () => new Array<unknown>(n));
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
    });
    return {
      text: `INSERT INTO readings (id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id)
        SELECT id, meter_id, account_id, period, read_at, t1, t2, t3, source,
               CASE WHEN flags = '' THEN '{}'::text[] ELSE string_to_array(flags, ',') END, received_at, request_id
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::timestamptz[], $6::numeric[], $7::numeric[],
                    $8::numeric[], $9::text[], $10::text[], $11::timestamptz[], $12::text[])
          AS r(id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id)
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
      values: [
        failures.map((f) => f.id),
        failures.map((f) => f.meterId),
        failures.map((f) => f.payload),
        failures.map((f) => f.reason),
        failures.map((f) => f.sqlstate),
      ],
    };
  },

  readingById(id) {
    return { text: `SELECT ${READING_COLUMNS} FROM readings WHERE id = $1::uuid`, values: [id] };
  },

  failedById(id) {
    return { text: `SELECT id, meter_id, payload, reason, sqlstate, failed_at FROM failed_readings WHERE id = $1`, values: [id] };
  },

  meterReadings(meterId, fromPeriod, toPeriod, history) {
    const range = `meter_id = $1 AND period >= $2::date AND period <= $3::date`;
    const values = [meterId, periodStartDate(fromPeriod), periodStartDate(toPeriod)];
    if (history) {
      return { text: `SELECT ${READING_COLUMNS} FROM readings WHERE ${range} ORDER BY period, received_at DESC, id DESC`, values };
    }
    return {
      text: `SELECT DISTINCT ON (period) ${READING_COLUMNS} FROM readings WHERE ${range} ORDER BY period, received_at DESC, id DESC`,
      values,
    };
  },

  migrationLock: { lock: `SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`, unlock: `SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})` },
};

export function dialectFor(backend: DbBackend): SqlDialect {
  if (backend === 'postgres') return postgresDialect;
  throw new Error(`DB_BACKEND=${backend} is not supported by this build yet; use DB_BACKEND=postgres`);
}
