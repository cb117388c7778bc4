import { describe, it, expect } from 'vitest';
import type { QueuedReading, ReadingFlag } from '../../readings/src/index.js';
import { dialectFor, postgresDialect, type RowToStore } from './sql-dialect.js';

function reading(i: number, overrides: Partial<QueuedReading> = {}): QueuedReading {
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    meterId: `M-${i}`,
    readAt: '2026-11-20T06:30:00.000Z',
    values: { t1: 100 + i },
    period: '2026-11',
    receivedAt: '2026-11-20T06:31:00.000Z',
    ...overrides,
  };
}

function row(i: number, overrides: Partial<QueuedReading> = {}, flags: ReadingFlag[] = []): RowToStore {
  return { reading: reading(i, overrides), flags };
}

/** Counts distinct $n placeholders in a statement. */
function placeholders(text: string): number[] {
  return [...new Set([...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);
}

describe('postgresDialect.insertReadings', () => {
  it('inserts through unnest of array parameters and ignores ids already stored', () => {
    const { text } = postgresDialect.insertReadings([row(1)]);
    expect(text).toMatch(/INSERT INTO readings/);
    expect(text).toMatch(/FROM unnest\(/);
    expect(text).toMatch(/\$1::uuid\[\]/);
    expect(text).toMatch(/ON CONFLICT \(id\) DO NOTHING/);
    expect(text).toMatch(/RETURNING id::text AS id, stored_at/);
  });

  it.each([1, 2, 500, 5_000, 20_000])('uses exactly 12 parameters for %i rows', (n) => {
    const rows = Array.from({ length: n }, (_, i) => row(i));
    const statement = postgresDialect.insertReadings(rows);
    expect(statement.values).toHaveLength(12);
    expect(placeholders(statement.text)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    for (const column of statement.values) {
      expect(Array.isArray(column)).toBe(true);
      expect(column).toHaveLength(n);
    }
  });

  it('stays far below the 65,535-parameter limit for 5,000 rows', () => {
    const rows = Array.from({ length: 5_000 }, (_, i) => row(i));
    expect(postgresDialect.insertReadings(rows).values.length).toBeLessThan(65_535);
  });

  it('puts the values of each reading into the column arrays, in order', () => {
    const full = row(
      1,
      {
        accountId: '12345',
        values: { t1: 100.5, t2: 50.25, t3: 0.001 },
        source: 'ami',
        period: '2026-11',
        requestId: 'req-1',
      },
      ['regression', 'spike'],
    );
    const bare = row(2, { period: '2026-12', readAt: '2026-12-01T00:00:00.000Z', receivedAt: '2026-12-01T00:00:01.000Z' });
    const oneFlag = row(3, { values: { t1: 7, t2: 8 } }, ['spike']);
    const { values } = postgresDialect.insertReadings([full, bare, oneFlag]);
    const [id, meterId, accountId, period, readAt, t1, t2, t3, source, flags, receivedAt, requestId] = values;

    expect(id).toEqual([full.reading.id, bare.reading.id, oneFlag.reading.id]);
    expect(meterId).toEqual(['M-1', 'M-2', 'M-3']);
    expect(accountId).toEqual(['12345', null, null]);
    expect(period).toEqual(['2026-11-01', '2026-12-01', '2026-11-01']);
    expect(readAt).toEqual(['2026-11-20T06:30:00.000Z', '2026-12-01T00:00:00.000Z', '2026-11-20T06:30:00.000Z']);
    expect(t1).toEqual([100.5, 102, 7]);
    expect(t2).toEqual([50.25, null, 8]);
    expect(t3).toEqual([0.001, null, null]);
    expect(source).toEqual(['ami', null, null]);
    expect(flags).toEqual(['regression,spike', '', 'spike']);
    expect(receivedAt).toEqual(['2026-11-20T06:31:00.000Z', '2026-12-01T00:00:01.000Z', '2026-11-20T06:31:00.000Z']);
    expect(requestId).toEqual(['req-1', null, null]);
  });

  it('uses null rather than undefined for absent values (no sparse arrays)', () => {
    const { values } = postgresDialect.insertReadings([row(1)]);
    for (const column of values as unknown[][]) {
      expect(column[0]).not.toBeUndefined();
      expect(0 in column).toBe(true);
    }
  });

  it('keeps a zero t2 as 0, not null', () => {
    const { values } = postgresDialect.insertReadings([row(1, { values: { t1: 0, t2: 0, t3: 0 } })]);
    expect(values[5]).toEqual([0]);
    expect(values[6]).toEqual([0]);
    expect(values[7]).toEqual([0]);
  });

  it('turns an empty flags string into an empty array in SQL', () => {
    const { text } = postgresDialect.insertReadings([row(1)]);
    expect(text).toMatch(/CASE WHEN flags = '' THEN '\{\}'::text\[\] ELSE string_to_array\(flags, ','\) END/);
  });

  it('handles an empty batch', () => {
    const statement = postgresDialect.insertReadings([]);
    expect(statement.values).toHaveLength(12);
    for (const column of statement.values) expect(column).toEqual([]);
  });
});

describe('postgresDialect.meterReadings', () => {
  it('returns the effective reading per period with DISTINCT ON when history is off', () => {
    const { text, values } = postgresDialect.meterReadings('M-1', '2026-01', '2026-11', false);
    expect(text).toMatch(/SELECT DISTINCT ON \(period\)/);
    expect(text).toMatch(/ORDER BY period, received_at DESC, id DESC/);
    expect(values).toEqual(['M-1', '2026-01-01', '2026-11-01']);
  });

  it('returns every submission without DISTINCT ON when history is on', () => {
    const { text, values } = postgresDialect.meterReadings('M-1', '2026-01', '2026-11', true);
    expect(text).not.toMatch(/DISTINCT/);
    expect(text).toMatch(/ORDER BY period, received_at DESC, id DESC/);
    expect(values).toEqual(['M-1', '2026-01-01', '2026-11-01']);
  });

  it('passes the meter id as a parameter, never in the SQL text', () => {
    const meterId = "M'; DROP TABLE readings; --";
    const { text, values } = postgresDialect.meterReadings(meterId, '2026-01', '2026-11', false);
    expect(text).not.toContain(meterId);
    expect(values[0]).toBe(meterId);
    expect(text).toMatch(/meter_id = \$1 AND period >= \$2::date AND period <= \$3::date/);
  });
});

describe('postgresDialect: other statements', () => {
  it('previousReadings takes two arrays: meter ids and period start dates', () => {
    const { text, values } = postgresDialect.previousReadings([
      { meterId: 'M-1', period: '2026-11' },
      { meterId: 'M-2', period: '2027-01' },
    ]);
    expect(text).toMatch(/unnest\(\$1::text\[\], \$2::date\[\]\)/);
    expect(text).toMatch(/r\.period < q\.period/);
    expect(values).toEqual([
      ['M-1', 'M-2'],
      ['2026-11-01', '2027-01-01'],
    ]);
  });

  it('insertFailed takes one array per column', () => {
    const { text, values } = postgresDialect.insertFailed([
      { id: 'a', meterId: 'M-1', payload: '{}', reason: 'bad', sqlstate: '22021' },
      { id: 'b', meterId: null, payload: '[]', reason: 'worse', sqlstate: null },
    ]);
    expect(text).toMatch(/INSERT INTO failed_readings/);
    expect(text).toMatch(/ON CONFLICT \(id\) DO UPDATE/);
    expect(values).toEqual([
      ['a', 'b'],
      ['M-1', null],
      ['{}', '[]'],
      ['bad', 'worse'],
      ['22021', null],
    ]);
  });

  it('readingById and failedById use one parameter', () => {
    expect(postgresDialect.readingById('abc')).toEqual({ text: expect.stringMatching(/WHERE id = \$1::uuid$/), values: ['abc'] });
    expect(postgresDialect.failedById('abc')).toEqual({ text: expect.stringMatching(/WHERE id = \$1$/), values: ['abc'] });
  });

  it('has a migration advisory lock with matching lock and unlock keys', () => {
    const lock = postgresDialect.migrationLock!;
    const key = /pg_advisory_lock\((\d+)\)/.exec(lock.lock)?.[1];
    expect(key).toBeDefined();
    expect(lock.unlock).toBe(`SELECT pg_advisory_unlock(${key})`);
  });
});

describe('dialectFor', () => {
  it('returns the postgres dialect for postgres', () => {
    expect(dialectFor('postgres')).toBe(postgresDialect);
    expect(dialectFor('postgres').backend).toBe('postgres');
  });

  it('throws a clear message for cockroach', () => {
    expect(() => dialectFor('cockroach')).toThrow(/DB_BACKEND=cockroach is not supported.*DB_BACKEND=postgres/);
  });
});
