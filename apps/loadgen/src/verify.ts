import type { LedgerReading } from './ledger.js';

/** A stored row as the checker reads it. */
export interface StoredRow {
  id: string;
  meterId: string;
  readAt: string;
  t1: number;
  t2: number | null;
  t3: number | null;
}

export interface VerifyReport {
  acknowledged: number;
  stored: number;
  /** Acknowledged ids with no row. */
  lost: string[];
  /** Rows that repeat an acknowledged reading under another id, or ids stored more than once. */
  duplicated: string[];
  /** Acknowledged ids whose row holds other values than were sent. */
  valueMismatch: string[];
  /** Rows that match a reading the service rejected (and nothing acknowledged). */
  rejectedButStored: string[];
  /** Rows nobody sent. */
  unexpected: string[];
  ok: boolean;
}

/** Readings are the same when meter, instant and values are; readAt in any ISO form (invalid ones compare as sent). */
const contentKey = (meterId: string, readAt: string, t1: number, t2: number | null | undefined, t3: number | null | undefined) =>
  `${meterId}|${Number.isNaN(Date.parse(readAt)) ? readAt : new Date(readAt).toISOString()}|${t1}|${t2 ?? ''}|${t3 ?? ''}`;

/**
 * Compares what the client was told with what the database holds. Indeterminate readings
 * (5xx, timeouts) may or may not be stored; resends with the same key must converge on one id.
 */
export function verifyAgainstRows(ledger: readonly LedgerReading[], rows: readonly StoredRow[]): VerifyReport {
  const acked = new Map<string, LedgerReading>();
  for (const r of ledger) if (r.outcome === 'acknowledged' && r.id) acked.set(r.id, r);
  const ackedContent = new Set([...acked.values()].map((r) => contentKey(r.meterId, r.readAt, r.values.t1, r.values.t2, r.values.t3)));
  const indeterminateContent = new Set(
    ledger.filter((r) => r.outcome === 'indeterminate').map((r) => contentKey(r.meterId, r.readAt, r.values.t1, r.values.t2, r.values.t3)),
  );
  const rejectedContent = new Set(ledger.filter((r) => r.outcome === 'rejected').map((r) => contentKey(r.meterId, r.readAt, r.values.t1, r.values.t2, r.values.t3)));

  const rowsById = new Map<string, StoredRow[]>();
  for (const row of rows) rowsById.set(row.id, [...(rowsById.get(row.id) ?? []), row]);

  const lost: string[] = [];
  const valueMismatch: string[] = [];
  const duplicated: string[] = [];
  for (const [id, sent] of acked) {
    const found = rowsById.get(id);
    if (!found) {
      lost.push(id);
      continue;
    }
    if (found.length > 1) duplicated.push(id);
    const row = found[0]!;
    if (contentKey(row.meterId, row.readAt, row.t1, row.t2, row.t3) !== contentKey(sent.meterId, sent.readAt, sent.values.t1, sent.values.t2, sent.values.t3)) {
      valueMismatch.push(id);
    }
  }
  const rejectedButStored: string[] = [];
  const unexpected: string[] = [];
  for (const row of rows) {
    if (acked.has(row.id)) continue;
    const key = contentKey(row.meterId, row.readAt, row.t1, row.t2, row.t3);
    if (ackedContent.has(key)) duplicated.push(row.id);
    else if (indeterminateContent.has(key)) continue;
    else if (rejectedContent.has(key)) rejectedButStored.push(row.id);
    else unexpected.push(row.id);
  }
  const report = { acknowledged: acked.size, stored: rows.length, lost, duplicated, valueMismatch, rejectedButStored, unexpected };
  return { ...report, ok: lost.length + duplicated.length + valueMismatch.length + rejectedButStored.length + unexpected.length === 0 };
}
