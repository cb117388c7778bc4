import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LedgerReading } from '../../apps/loadgen/src/ledger.js';
import { type StoredRow, verifyAgainstRows, type VerifyReport } from '../../apps/loadgen/src/verify.js';
import { withDb } from './db.js';
import { authHeaders } from './auth.js';

export interface SentReading {
  meterId: string;
  readAt: string;
  values: { t1: number; t2?: number; t3?: number };
  accountId?: string;
  source?: string;
}

/** What the client knows about one reading: the checker compares this with the database. */
export interface LedgerEntry {
  body: unknown;
  valid: boolean;
  outcome: 'acknowledged' | 'rejected' | 'indeterminate';
  status: number;
  id?: string;
  key?: string;
}

export class Ledger {
  readonly entries: LedgerEntry[] = [];

  record(entry: LedgerEntry): void {
    this.entries.push(entry);
  }

  acknowledged(): LedgerEntry[] {
    return this.entries.filter((e) => e.outcome === 'acknowledged');
  }

  rejected(): LedgerEntry[] {
    return this.entries.filter((e) => e.outcome === 'rejected');
  }
}

export function outcomeOf(status: number): LedgerEntry['outcome'] {
  if (status === 201 || status === 202) return 'acknowledged';
  if (status >= 400 && status < 500) return 'rejected';
  return 'indeterminate';
}

/** Builds valid readings for distinct meters, with a share of two- and three-rate meters. */
export function validReading(prefix: string, i: number): SentReading {
  const readAt = new Date(Date.now() - 60_000 - i * 1_000).toISOString();
  const t1 = 1_000 + i + Math.round(Math.random() * 1000) / 1000;
  if (i % 3 === 0) return { meterId: `${prefix}-${i}`, readAt, values: { t1 }, source: 'web' };
  if (i % 3 === 1) return { meterId: `${prefix}-${i}`, readAt, values: { t1, t2: i / 2 }, accountId: String(100_000 + i), source: 'app' };
  return { meterId: `${prefix}-${i}`, readAt, values: { t1, t2: i / 2, t3: i / 4 }, source: 'ami' };
}

/** Invalid variants that still carry a recognisable meterId, so "rejected but stored" is checkable. */
export function invalidReading(prefix: string, i: number): Record<string, unknown> {
  const base = validReading(prefix, i) as unknown as Record<string, unknown>;
  switch (i % 5) {
    case 0:
      return { ...base, values: { t1: -1 } };
    case 1:
      return { ...base, values: { t1: 1.2345 } };
    case 2:
      return { ...base, readAt: '2026-01-01T10:00:00' };
    case 3:
      return { ...base, extra: true };
    default:
      return { ...base, values: { t1: 5, t3: 1 } };
  }
}

/** POST as the suite's client (its key unless `headers` sets Authorization itself). */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders(), ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

/** GET as the suite's client (its key unless `headers` sets Authorization itself). */
export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { headers: { ...authHeaders(), ...headers } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Runs tasks with bounded concurrency, like many clients at once. */
export async function inParallel<T>(items: T[], concurrency: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/** The load generator's report, plus the count of rows nobody sent that the tests assert on. */
export type Verification = VerifyReport & { unexpectedRows: number };

/**
 * The checker (the load generator's, apps/loadgen/src/verify.ts): every acknowledged id exactly
 * once with the values sent, nothing rejected stored, no rows nobody sent, within the meters of
 * this run. Waits, bounded, for the writers to drain first.
 */
export async function verifyLedger(databaseUrl: string, ledger: Ledger, meterPrefix: string, drainTimeoutMs = 60_000): Promise<Verification> {
  const ackedIds = new Set(ledger.acknowledged().map((e) => e.id!));
  const deadline = Date.now() + drainTimeoutMs;
  let rows: StoredRow[];
  for (;;) {
    rows = await withDb(databaseUrl, async (c) =>
      (await c.query<{ id: string; meter_id: string; read_at: Date; t1: string; t2: string | null; t3: string | null }>(
        `SELECT id::text, meter_id, read_at, t1::text, t2::text, t3::text FROM readings WHERE meter_id LIKE $1`,
        [`${meterPrefix}-%`],
      )).rows.map((r) => ({ id: r.id, meterId: r.meter_id, readAt: r.read_at.toISOString(), t1: Number(r.t1), t2: r.t2 === null ? null : Number(r.t2), t3: r.t3 === null ? null : Number(r.t3) })),
    );
    const present = new Set(rows.map((r) => r.id));
    if ([...ackedIds].every((id) => present.has(id)) || Date.now() > deadline) break;
    await sleep(200);
  }
  const readings: LedgerReading[] = ledger.entries.map((e) => {
    const body = (e.body ?? {}) as { meterId?: unknown; readAt?: unknown; values?: { t1: number; t2?: number; t3?: number } };
    return {
      id: e.id,
      meterId: String(body.meterId),
      readAt: String(body.readAt),
      values: body.values ?? { t1: Number.NaN },
      outcome: e.outcome,
      valid: e.valid,
      key: e.key ?? '',
    };
  });
  const report = verifyAgainstRows(readings, rows);
  return { ...report, unexpectedRows: report.unexpected.length };
}

export const newKey = () => randomUUID();
