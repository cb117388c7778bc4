import { describe, expect, it } from 'vitest';
import { SCHEMA } from '../schema.js';
import { cockroachDialect, postgresDialect, type RowToStore } from '../sql-dialect.js';
import { COCKROACH_MIGRATIONS } from './cockroach/index.js';
import { POSTGRES_MIGRATIONS } from './postgres/index.js';

// The shape of each backend's migrations. Whether they produce exactly SCHEMA is checked against
// a real database: test/integration/schema.spec.ts (PostgreSQL), test/cockroach/ (CockroachDB).
const backends = [
  ['postgres', POSTGRES_MIGRATIONS],
  ['cockroach', COCKROACH_MIGRATIONS],
] as const;

describe.each(backends)('%s migrations', (_backend, migrations) => {
  const statements = migrations.flatMap((m) => m.statements.map((sql) => sql.replace(/\s+/g, ' ').trim()));

  it('have unique names in order', () => {
    const names = migrations.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual(names);
  });

  it('hold one DDL per statement, each idempotent (IF NOT EXISTS), none opening its own transaction', () => {
    expect(statements.length).toBeGreaterThan(0);
    for (const sql of statements) {
      expect(sql).toMatch(/^(CREATE (TABLE|(UNIQUE )?INDEX) IF NOT EXISTS |ALTER TABLE \w+ ADD COLUMN IF NOT EXISTS )/);
      expect(sql).not.toMatch(/;\s*\S/);
      expect(sql).not.toMatch(/\b(BEGIN|COMMIT)\b/i);
    }
  });

  it('name every table, column and index of the schema the code expects', () => {
    const all = statements.join(' ');
    for (const table of SCHEMA) {
      expect(all).toContain(`CREATE TABLE IF NOT EXISTS ${table.name} (`);
      for (const c of table.columns) expect(all).toMatch(new RegExp(`([(,] ?|ALTER TABLE ${table.name} ADD COLUMN IF NOT EXISTS )${c.name} `));
      for (const i of table.indexes) expect(all).toContain(`CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${i.name} ON ${table.name} (${i.columns.join(', ')})`);
    }
  });
});

describe('CockroachDB migrations', () => {
  const statements = COCKROACH_MIGRATIONS.flatMap((m) => m.statements.map((sql) => sql.replace(/\s+/g, ' ').trim()));

  it('key readings by a UUID with a random default, never a sequence', () => {
    const readings = statements.find((s) => s.startsWith('CREATE TABLE IF NOT EXISTS readings'))!;
    expect(readings).toMatch(/id UUID NOT NULL DEFAULT gen_random_uuid\(\)/);
    expect(readings).toMatch(/PRIMARY KEY \(id\)/);
    expect(statements.join(' ')).not.toMatch(/SERIAL|unique_rowid|SEQUENCE/i);
  });

  it('hash-shard every index on a value that only grows, and only those', () => {
    const indexes = statements.filter((s) => /^CREATE (UNIQUE )?INDEX/.test(s));
    const growing = /\((failed_at|stored_at|received_at)\b/;
    for (const sql of indexes) {
      if (growing.test(sql)) expect(sql).toMatch(/USING HASH$/);
      else expect(sql).not.toMatch(/USING HASH/);
    }
    expect(indexes.some((i) => /USING HASH/.test(i))).toBe(true);
  });
});

describe('the statements of both dialects', () => {
  const row: RowToStore = { reading: { id: 'x', meterId: 'M', period: '2026-11', readAt: '2026-11-20T00:00:00Z', receivedAt: '2026-11-20T00:00:01Z', values: { t1: 1 } }, flags: [] };
  const columnsOf = (table: string) => new Set(SCHEMA.find((t) => t.name === table)!.columns.map((c) => c.name));

  it.each([postgresDialect, cockroachDialect].map((d) => [d.backend, d] as const))('%s: write and read only columns the schema has', (_backend, d) => {
    for (const [table, text] of [
      ['readings', d.insertReadings([row]).text],
      ['failed_readings', d.insertFailed([{ id: 'a', meterId: null, payload: '{}', reason: 'r', sqlstate: null }]).text],
    ] as const) {
      const listed = /INSERT INTO \w+ \(([^)]*)\)/.exec(text)![1]!.split(',').map((c) => c.trim());
      for (const c of listed) expect(columnsOf(table), `${table}.${c}`).toContain(c);
    }
    for (const text of [d.readingById('x').text, d.meterReadings('M', '2026-01', '2026-02', true).text]) {
      const selected = /SELECT (?:DISTINCT ON \([^)]*\) )?(.*?) FROM readings/.exec(text)![1]!;
      // Each output column is a stored column, maybe cast or formatted (id::text, to_char(period, …)).
      for (const expr of selected.split(/,(?![^(]*\))/)) {
        const name = /^(?:to_char\(|substr\()?([a-z_0-9]+)/.exec(expr.trim())![1]!;
        expect(columnsOf('readings'), expr).toContain(name);
      }
    }
  });
});
