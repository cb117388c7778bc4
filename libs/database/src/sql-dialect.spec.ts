import { describe, it, expect } from 'vitest';
import type { QueuedReading, ReadingFlag } from '#libs/readings';
import { cockroachDialect, dialectFor, FOLLOWER_READ_CLAUSE, postgresDialect, type RowToStore, type SqlDialect } from './sql-dialect.js';

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

  it.each([1, 2, 500, 5_000, 20_000])('uses exactly 13 parameters for %i rows', (n) => {
    const rows = Array.from({ length: n }, (_, i) => row(i));
    const statement = postgresDialect.insertReadings(rows);
    expect(statement.values).toHaveLength(13);
    expect(placeholders(statement.text)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
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
        clientId: '0b6f6c33-3d2e-4c55-9a57-8f0f5e3c2a11',
      },
      ['regression', 'spike'],
    );
    const bare = row(2, { period: '2026-12', readAt: '2026-12-01T00:00:00.000Z', receivedAt: '2026-12-01T00:00:01.000Z' });
    const oneFlag = row(3, { values: { t1: 7, t2: 8 } }, ['spike']);
    const { values } = postgresDialect.insertReadings([full, bare, oneFlag]);
    const [id, meterId, accountId, period, readAt, t1, t2, t3, source, flags, receivedAt, requestId, clientId] = values;

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
    expect(clientId).toEqual(['0b6f6c33-3d2e-4c55-9a57-8f0f5e3c2a11', null, null]);
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
    expect(statement.values).toHaveLength(13);
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

});

describe('dialectFor', () => {
  it('returns the postgres dialect for postgres', () => {
    expect(dialectFor('postgres')).toBe(postgresDialect);
    expect(dialectFor('postgres').backend).toBe('postgres');
    expect(dialectFor('postgres').staleReads).toBe('replica');
  });

  it('returns the cockroach dialect for cockroach', () => {
    expect(dialectFor('cockroach')).toBe(cockroachDialect);
    expect(dialectFor('cockroach').backend).toBe('cockroach');
    expect(dialectFor('cockroach').staleReads).toBe('follower-reads');
  });

  it('throws a clear message for an unknown backend', () => {
    expect(() => dialectFor('oracle' as never)).toThrow(/DB_BACKEND=oracle: no SQL dialect/);
  });
});

describe('cockroachDialect.insertReadings', () => {
  it('inserts through multi-argument unnest with CockroachDB type names and ignores ids already stored', () => {
    const { text } = cockroachDialect.insertReadings([row(1)]);
    expect(text).toMatch(/^INSERT INTO readings \(id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at, request_id, client_id\)/);
    expect(text).toMatch(/FROM unnest\(\$1::UUID\[\], \$2::STRING\[\], \$3::STRING\[\], \$4::DATE\[\], \$5::TIMESTAMPTZ\[\], \$6::DECIMAL\[\], \$7::DECIMAL\[\],\s+\$8::DECIMAL\[\], \$9::STRING\[\], \$10::STRING\[\], \$11::TIMESTAMPTZ\[\], \$12::STRING\[\], \$13::UUID\[\]\)/);
    expect(text).toMatch(/ON CONFLICT \(id\) DO NOTHING/);
    expect(text).toMatch(/RETURNING id::STRING AS id, stored_at$/);
  });

  it('is an INSERT … ON CONFLICT DO NOTHING, never an UPSERT (a redelivery must not overwrite a stored reading)', () => {
    const { text } = cockroachDialect.insertReadings([row(1)]);
    expect(text).not.toMatch(/UPSERT/i);
    expect(text).not.toMatch(/DO UPDATE/i);
  });

  it('turns an empty flags string into an empty STRING[] and splits the others', () => {
    expect(cockroachDialect.insertReadings([row(1)]).text).toMatch(/CASE WHEN flags = '' THEN ARRAY\[\]::STRING\[\] ELSE string_to_array\(flags, ','\) END/);
  });

  it.each([1, 100, 5_000])('uses exactly 13 array parameters for %i rows, like PostgreSQL', (n) => {
    const rows = Array.from({ length: n }, (_, i) => row(i, {}, i % 2 ? ['spike'] : []));
    const crdb = cockroachDialect.insertReadings(rows);
    expect(placeholders(crdb.text)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    // Same parameters as the PostgreSQL statement: only the SQL text differs between backends.
    expect(crdb.values).toEqual(postgresDialect.insertReadings(rows).values);
  });
});

describe('cockroachDialect reads', () => {
  it('reads the effective reading per period with DISTINCT ON on qualified columns, current by default', () => {
    const { text, values } = cockroachDialect.meterReadings('M-1', '2026-01', '2026-11', false);
    expect(text).toMatch(/^SELECT DISTINCT ON \(readings\.period\) /);
    expect(text).toMatch(/ORDER BY readings\.period, readings\.received_at DESC, readings\.id DESC$/);
    expect(text).toMatch(/WHERE readings\.meter_id = \$1 AND readings\.period >= \$2::DATE AND readings\.period <= \$3::DATE/);
    expect(text).not.toMatch(/AS OF SYSTEM TIME/);
    expect(values).toEqual(['M-1', '2026-01-01', '2026-11-01']);
  });

  it('reads stale history as a follower read: AS OF SYSTEM TIME follower_read_timestamp() right after the table', () => {
    for (const history of [false, true]) {
      const { text } = cockroachDialect.meterReadings('M-1', '2026-01', '2026-11', history, true);
      expect(text).toContain(`FROM readings ${FOLLOWER_READ_CLAUSE} WHERE`);
      expect(FOLLOWER_READ_CLAUSE).toBe('AS OF SYSTEM TIME follower_read_timestamp()');
    }
  });

  it('returns every submission without DISTINCT ON when history is on', () => {
    const { text } = cockroachDialect.meterReadings('M-1', '2026-01', '2026-11', true, false);
    expect(text).not.toMatch(/DISTINCT/);
    expect(text).toMatch(/^SELECT id::STRING AS id, /);
  });

  it('formats the period without to_char (YYYY-MM from the ISO date string) and numerics as strings', () => {
    const { text } = cockroachDialect.readingById('abc');
    expect(text).toContain('substr(period::STRING, 1, 7) AS period');
    expect(text).toContain('t1::STRING AS t1');
    expect(text).toMatch(/WHERE id = \$1::UUID$/);
    expect(text).not.toContain('to_char');
  });

  it('never puts the meter id into the SQL text', () => {
    const meterId = "M'; DROP TABLE readings; --";
    const { text, values } = cockroachDialect.meterReadings(meterId, '2026-01', '2026-11', false, true);
    expect(text).not.toContain(meterId);
    expect(values[0]).toBe(meterId);
  });

  it('PostgreSQL ignores the stale flag: its stale reads go to the replica pool', () => {
    expect(postgresDialect.meterReadings('M-1', '2026-01', '2026-11', false, true)).toEqual(postgresDialect.meterReadings('M-1', '2026-01', '2026-11', false));
    expect(postgresDialect.meterReadings('M-1', '2026-01', '2026-11', false).text).not.toMatch(/AS OF SYSTEM TIME/);
  });
});

describe('cockroachDialect: the writer statements', () => {
  it('previousReadings: a LATERAL join per (meter, period), latest earlier period first, one row each', () => {
    const { text, values } = cockroachDialect.previousReadings([
      { meterId: 'M-1', period: '2026-11' },
      { meterId: 'M-2', period: '2027-01' },
    ]);
    expect(text).toMatch(/FROM unnest\(\$1::STRING\[\], \$2::DATE\[\]\) AS q\(meter_id, period\)/);
    expect(text).toMatch(/CROSS JOIN LATERAL \(/);
    expect(text).toMatch(/r\.period < q\.period/);
    expect(text).toMatch(/ORDER BY r\.period DESC, r\.received_at DESC, r\.id DESC\s+LIMIT 1/);
    expect(text).toContain('substr(q.period::STRING, 1, 7) AS period');
    expect(values).toEqual([
      ['M-1', 'M-2'],
      ['2026-11-01', '2027-01-01'],
    ]);
  });

  it('insertFailed: one array per column, an update keeping the latest reason', () => {
    const { text, values } = cockroachDialect.insertFailed([{ id: 'a', meterId: null, payload: '{}', reason: 'bad', sqlstate: '22003' }]);
    expect(text).toMatch(/unnest\(\$1::STRING\[\], \$2::STRING\[\], \$3::STRING\[\], \$4::STRING\[\], \$5::STRING\[\]\)/);
    expect(text).toMatch(/ON CONFLICT \(id\) DO UPDATE SET reason = excluded\.reason/);
    expect(values).toEqual([['a'], [null], ['{}'], ['bad'], ['22003']]);
  });
});

describe('both dialects', () => {
  const dialects: SqlDialect[] = [postgresDialect, cockroachDialect];

  it.each(dialects.map((d) => [d.backend, d] as const))('%s: every statement has as many placeholders as values', (_name, d) => {
    const statements = [
      d.insertReadings([row(1), row(2)]),
      d.previousReadings([{ meterId: 'M', period: '2026-11' }]),
      d.insertFailed([{ id: 'a', meterId: 'M', payload: '{}', reason: 'r', sqlstate: null }]),
      d.readingById('x'),
      d.failedById('x'),
      d.storedValues(['x', 'y']),
      d.meterReadings('M', '2026-01', '2026-02', false),
      d.meterReadings('M', '2026-01', '2026-02', true, true),
    ];
    for (const st of statements) expect(placeholders(st.text)).toEqual(st.values.map((_, i) => i + 1));
  });
});

describe('meterReadings for one client (read:own)', () => {
  const owner = '0b6f6c33-3d2e-4c55-9a57-8f0f5e3c2a11';
  it.each([postgresDialect, cockroachDialect].map((d) => [d.backend, d] as const))('%s: filters on client_id as a fourth parameter, and only when asked', (_backend, d) => {
    for (const history of [false, true]) {
      const own = d.meterReadings('M-1', '2026-01', '2026-11', history, false, owner);
      expect(own.text).toMatch(/client_id = \$4::uuid/i);
      expect(own.values).toEqual(['M-1', '2026-01-01', '2026-11-01', owner]);
      const all = d.meterReadings('M-1', '2026-01', '2026-11', history, false);
      expect(all.text).not.toMatch(/client_id =/);
      expect(all.values).toHaveLength(3);
    }
  });
});
