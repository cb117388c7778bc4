import { describe, expect, it } from 'vitest';
import { SCHEMA, schemaDifferences, type TableSpec } from './schema.js';

describe('schemaDifferences', () => {
  const copy = (): TableSpec[] => structuredClone(SCHEMA) as TableSpec[];

  it('finds none between a schema and itself', () => {
    expect(schemaDifferences(SCHEMA, copy())).toEqual([]);
  });

  it('names a missing table, a nullability change, a primary key change and an index with other columns', () => {
    const actual = copy().filter((t) => t.name !== 'failed_readings');
    const readings = actual[0]!;
    readings.columns.find((c) => c.name === 't2')!.nullable = false;
    readings.primaryKey = ['id', 'meter_id'];
    readings.indexes[0]!.columns = ['meter_id', 'period'];
    expect(schemaDifferences(SCHEMA, actual)).toEqual([
      'readings.t2: expected numeric(12,3) NULL, found numeric(12,3) NOT NULL',
      'readings: primary key (id) expected, found (id, meter_id)',
      'readings: index readings_meter_period_idx expected (meter_id, period, received_at, id), found (meter_id, period)',
      'table failed_readings: missing',
    ]);
  });
});
