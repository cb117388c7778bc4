import { describe, it, expect } from 'vitest';
import { isUuid, newReadingId, readingFingerprint, readingIdForKey } from './reading-id.js';
import type { ValidReading } from './reading.types.js';

describe('readingIdForKey', () => {
  it('is deterministic for the same scope and key', () => {
    expect(readingIdForKey('client-1', 'key-1')).toBe(readingIdForKey('client-1', 'key-1'));
  });

  it('differs across keys within one scope', () => {
    expect(readingIdForKey('client-1', 'key-1')).not.toBe(readingIdForKey('client-1', 'key-2'));
  });

  it('differs across scopes for one key', () => {
    expect(readingIdForKey('client-1', 'key-1')).not.toBe(readingIdForKey('client-2', 'key-1'));
  });

  it('produces a valid UUID with version 5 and the RFC 4122 variant', () => {
    for (const [scope, key] of [
      ['a', 'b'],
      ['client-1', 'key-1'],
      ['', ''],
      ['scope', 'k'.repeat(128)],
    ] as const) {
      const id = readingIdForKey(scope, key);
      expect(isUuid(id)).toBe(true);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(id[14]).toBe('5');
    }
  });

  it('gives many distinct ids for many keys', () => {
    const ids = new Set(Array.from({ length: 1000 }, (_, i) => readingIdForKey('s', `key-${i}`)));
    expect(ids.size).toBe(1000);
  });
});

describe('newReadingId', () => {
  it('returns a fresh UUID each time', () => {
    const a = newReadingId();
    const b = newReadingId();
    expect(isUuid(a)).toBe(true);
    expect(isUuid(b)).toBe(true);
    expect(a).not.toBe(b);
  });
});

describe('isUuid', () => {
  it.each(['00000000-0000-0000-0000-000000000000', '123E4567-E89B-12D3-A456-426614174000', '123e4567-e89b-52d3-a456-426614174000'])(
    'accepts %s',
    (text) => {
      expect(isUuid(text)).toBe(true);
    },
  );

  it.each([
    '',
    'not-a-uuid',
    '123e4567e89b12d3a456426614174000',
    '123e4567-e89b-12d3-a456-42661417400',
    '123e4567-e89b-12d3-a456-4266141740000',
    '123e4567-e89b-12d3-a456-42661417400g',
    '{123e4567-e89b-12d3-a456-426614174000}',
    '123e4567-e89b-12d3-a456-426614174000\n',
  ])('rejects %j', (text) => {
    expect(isUuid(text)).toBe(false);
  });
});

describe('readingFingerprint', () => {
  const base: ValidReading = {
    meterId: 'M-1',
    accountId: '123',
    readAt: '2026-11-20T06:30:00.000Z',
    values: { t1: 100, t2: 50, t3: 25 },
    source: 'web',
  };

  it('is equal for equal readings (different objects)', () => {
    const copy: ValidReading = JSON.parse(JSON.stringify(base)) as ValidReading;
    expect(readingFingerprint(copy)).toBe(readingFingerprint(base));
  });

  it('does not depend on the order of properties', () => {
    const reordered: ValidReading = {
      source: 'web',
      values: { t3: 25, t2: 50, t1: 100 },
      readAt: '2026-11-20T06:30:00.000Z',
      accountId: '123',
      meterId: 'M-1',
    };
    expect(readingFingerprint(reordered)).toBe(readingFingerprint(base));
  });

  it('is a short url-safe string', () => {
    expect(readingFingerprint(base)).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it.each<[string, ValidReading]>([
    ['meterId', { ...base, meterId: 'M-2' }],
    ['accountId', { ...base, accountId: '124' }],
    ['accountId absent', { ...base, accountId: undefined }],
    ['readAt', { ...base, readAt: '2026-11-20T06:30:00.001Z' }],
    ['t1', { ...base, values: { ...base.values, t1: 100.001 } }],
    ['t2', { ...base, values: { ...base.values, t2: 51 } }],
    ['t3', { ...base, values: { ...base.values, t3: 26 } }],
    ['t3 absent', { ...base, values: { t1: 100, t2: 50 } }],
    ['t2 and t3 absent', { ...base, values: { t1: 100 } }],
    ['source', { ...base, source: 'app' }],
    ['source absent', { ...base, source: undefined }],
  ])('differs when %s differs', (_name, other) => {
    expect(readingFingerprint(other)).not.toBe(readingFingerprint(base));
  });

  it('does not confuse values moved between zones', () => {
    const a: ValidReading = { meterId: 'M', readAt: base.readAt, values: { t1: 1, t2: 2 } };
    const b: ValidReading = { meterId: 'M', readAt: base.readAt, values: { t1: 2, t2: 1 } };
    expect(readingFingerprint(a)).not.toBe(readingFingerprint(b));
  });

  it('does not confuse field boundaries (meterId/accountId)', () => {
    const a: ValidReading = { meterId: 'M1', accountId: '23', readAt: base.readAt, values: { t1: 1 } };
    const b: ValidReading = { meterId: 'M12', accountId: '3', readAt: base.readAt, values: { t1: 1 } };
    expect(readingFingerprint(a)).not.toBe(readingFingerprint(b));
  });
});
