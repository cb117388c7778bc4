import { expect } from 'vitest';
import { inParallel, invalidReading, Ledger, newKey, outcomeOf, postJson, validReading, type Verification, verifyLedger } from './ledger.js';

/**
 * The end-to-end intake scenario shared by the PostgreSQL suite (test/e2e/intake.spec.ts) and the
 * CockroachDB suite (test/cockroach): `total` readings for meters `<prefix>-<n>`, half as singles
 * with an Idempotency-Key (every 100th resent with the same key), half in batches of 100 with
 * submissionIds (the first batch resent); every 20th reading invalid. Checks each answer as it
 * comes and returns the ledger, for verifyLedger against the database.
 */
export async function sendMixedIntake(apiUrl: string, prefix: string, total = 2_000): Promise<Ledger> {
  const ledger = new Ledger();
  // 1,000 singles, 1,000 in batches of 100; every 20th reading invalid, every 100th resent with its key.
  const singles = Array.from({ length: total / 2 }, (_, i) => i);
  await inParallel(singles, 32, async (i) => {
    const valid = i % 20 !== 7;
    const body = valid ? validReading(prefix, i) : invalidReading(prefix, i);
    const key = newKey();
    const res = await postJson(`${apiUrl}/v1/readings`, body, { 'idempotency-key': key });
    ledger.record({ body, valid, outcome: outcomeOf(res.status), status: res.status, id: res.json?.id, key });
    if (valid) {
      expect(res.status, JSON.stringify(res.json)).toBe(202);
      expect(res.headers.get('location')).toBe(`/v1/readings/${res.json.id}`);
    } else {
      expect([400, 422]).toContain(res.status);
      expect(res.json.error.details.length).toBeGreaterThan(0);
    }
    if (valid && i % 100 === 3) {
      const again = await postJson(`${apiUrl}/v1/readings`, body, { 'idempotency-key': key });
      expect(again.status).toBe(202);
      expect(again.json.id).toBe(res.json.id);
      ledger.record({ body, valid, outcome: outcomeOf(again.status), status: again.status, id: again.json.id, key });
    }
  });
  const batchIndexes = Array.from({ length: 10 }, (_, b) => b);
  await inParallel(batchIndexes, 4, async (b) => {
    const items = Array.from({ length: 100 }, (_, j) => {
      const i = total / 2 + b * 100 + j;
      const valid = i % 20 !== 7;
      const body = valid ? validReading(prefix, i) : invalidReading(prefix, i);
      return { i, valid, body, submissionId: `sub-${prefix}-${i}` };
    });
    const send = () => postJson(`${apiUrl}/v1/readings/batch`, { readings: items.map((it) => ({ ...it.body, submissionId: it.submissionId })) });
    const res = await send();
    expect(res.status).toBe(202);
    const accepted = new Map<number, string>(res.json.accepted.map((a: { index: number; id: string }) => [a.index, a.id]));
    const rejected = new Set<number>(res.json.rejected.map((r: { index: number }) => r.index));
    items.forEach((it, index) => {
      expect(accepted.has(index)).toBe(it.valid);
      expect(rejected.has(index)).toBe(!it.valid);
      ledger.record({ body: it.body, valid: it.valid, outcome: it.valid ? 'acknowledged' : 'rejected', status: it.valid ? 202 : 422, id: accepted.get(index), key: it.submissionId });
    });
    if (b === 0) {
      // A resent batch (same submissionIds) maps onto the same ids and stores nothing twice.
      const again = await send();
      expect(again.json.accepted.map((a: { id: string }) => a.id)).toEqual(res.json.accepted.map((a: { id: string }) => a.id));
    }
  });
  return ledger;
}

/** The database holds exactly what sendMixedIntake's answers promised: nothing lost, doubled, altered or stored unasked. */
export async function expectMixedIntakeStoredOnce(databaseUrl: string, ledger: Ledger, prefix: string, total: number): Promise<Verification> {
  expect(ledger.rejected()).toHaveLength(total / 20);
  const v = await verifyLedger(databaseUrl, ledger, prefix);
  expect(v.lost).toEqual([]);
  expect(v.duplicated).toEqual([]);
  expect(v.valueMismatch).toEqual([]);
  expect(v.rejectedButStored).toEqual([]);
  expect(v.unexpectedRows).toBe(0);
  expect(v.acknowledged).toBe(total - total / 20);
  expect(v.stored).toBe(v.acknowledged);
  return v;
}
