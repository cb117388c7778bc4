import { computeFlags, type PreviousReading, type QueuedReading } from '#libs/readings';
import { rowToValues } from './reading-rows.js';
import type { RowToStore, SqlDialect } from './sql-dialect.js';

/** Runs one statement; the caller decides on which connection (a transaction's runner, or the pool). */
export type RunQuery = (text: string, values: unknown[]) => Promise<unknown>;

/**
 * Decides each reading's flags against its meter's latest stored reading of an earlier period,
 * with one query for all the readings given: the writer passes a batch, the benchmark's naive
 * mode one reading.
 */
export async function withFlags(query: RunQuery, dialect: SqlDialect, rows: readonly QueuedReading[], spikeKwhPerDay: number): Promise<RowToStore[]> {
  const pairs = new Map<string, { meterId: string; period: string }>();
  for (const r of rows) pairs.set(`${r.meterId}\u0000${r.period}`, { meterId: r.meterId, period: r.period });
  const previous = new Map<string, PreviousReading>();
  if (pairs.size > 0) {
    const statement = dialect.previousReadings([...pairs.values()]);
    const found = (await query(statement.text, statement.values)) as {
      meter_id: string;
      period: string;
      t1: string;
      t2: string | null;
      t3: string | null;
      read_at: Date;
    }[];
    for (const p of found) previous.set(`${p.meter_id}\u0000${p.period}`, { values: rowToValues(p), readAt: p.read_at.toISOString() });
  }
  return rows.map((reading) => ({
    reading,
    flags: computeFlags(reading.values, reading.readAt, previous.get(`${reading.meterId}\u0000${reading.period}`), spikeKwhPerDay),
  }));
}
