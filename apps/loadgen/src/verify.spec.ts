import { describe, expect, it } from 'vitest';
import type { LedgerReading } from './ledger.js';
import { type StoredRow, verifyAgainstRows } from './verify.js';

const reading = (n: number, outcome: LedgerReading['outcome'], id?: string): LedgerReading => ({
  id,
  meterId: `lg-run-${n}`,
  readAt: `2026-11-${String(10 + (n % 10)).padStart(2, '0')}T10:00:00.000Z`,
  values: { t1: 100 + n, t2: n },
  outcome,
  valid: outcome !== 'rejected',
  key: `k${n}`,
});
const rowOf = (r: LedgerReading, id = r.id!): StoredRow => ({ id, meterId: r.meterId, readAt: r.readAt, t1: r.values.t1, t2: r.values.t2 ?? null, t3: r.values.t3 ?? null });

describe('verification against the database', () => {
  const acked = [1, 2, 3, 4].map((n) => reading(n, 'acknowledged', `id-${n}`));

  it('passes when every acknowledged reading is stored once with its values', () => {
    const report = verifyAgainstRows(acked, acked.map((r) => rowOf(r)));
    expect(report).toMatchObject({ ok: true, acknowledged: 4, stored: 4, lost: [], duplicated: [] });
  });

  it('reports exactly the lost ids', () => {
    const report = verifyAgainstRows(acked, [rowOf(acked[0]!), rowOf(acked[3]!)]);
    expect(report.lost).toEqual(['id-2', 'id-3']);
    expect(report.ok).toBe(false);
  });

  it('reports a copy of an acknowledged reading under another id as duplicated', () => {
    const report = verifyAgainstRows(acked, [...acked.map((r) => rowOf(r)), rowOf(acked[1]!, 'copy-1')]);
    expect(report.duplicated).toEqual(['copy-1']);
    expect(report.unexpected).toEqual([]);
  });

  it('reports changed values, rejected readings that were stored, and rows nobody sent', () => {
    const rejected = reading(7, 'rejected');
    const stranger = reading(9, 'acknowledged', 'id-9');
    const rows = [...acked.map((r) => rowOf(r)), rowOf(rejected, 'r-7'), rowOf(stranger, 'id-9')];
    rows[0] = { ...rows[0]!, t1: 1 };
    const report = verifyAgainstRows([...acked, rejected], rows);
    expect(report.valueMismatch).toEqual(['id-1']);
    expect(report.rejectedButStored).toEqual(['r-7']);
    expect(report.unexpected).toEqual(['id-9']);
  });

  it('accepts an indeterminate reading either stored or not', () => {
    const maybe = reading(5, 'indeterminate');
    expect(verifyAgainstRows([...acked, maybe], acked.map((r) => rowOf(r))).ok).toBe(true);
    expect(verifyAgainstRows([...acked, maybe], [...acked.map((r) => rowOf(r)), rowOf(maybe, 'x')]).ok).toBe(true);
  });
});
