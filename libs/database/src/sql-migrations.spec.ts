import { describe, expect, it } from 'vitest';
import { isCreateRace } from './sql-migrations.js';

describe('isCreateRace: the errors of two runners creating the same table at once', () => {
  it.each([
    ['23505', 'PostgreSQL: duplicate key in pg_type_typname_nsp_index'],
    ['42710', 'PostgreSQL: type "schema_migration_lock" already exists (seen under load)'],
    ['42P07', 'relation already exists'],
    ['40001', 'CockroachDB: restart transaction'],
  ])('%s (%s) is retried', (code) => {
    expect(isCreateRace({ code })).toBe(true);
    expect(isCreateRace({ driverError: { code } })).toBe(true);
  });

  it('anything else is not', () => {
    expect(isCreateRace({ code: '42601' })).toBe(false);
    expect(isCreateRace(new Error('boom'))).toBe(false);
  });
});
