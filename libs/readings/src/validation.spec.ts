import { describe, it, expect, afterEach } from 'vitest';
import {
  DEFAULT_RULES,
  parseIsoWithOffset,
  statusForErrors,
  validateReading,
  type ValidationError,
  type ValidationResult,
} from './validation.js';

const NOW = Date.parse('2026-11-20T12:00:00Z');
const MINUTE = 60_000;
const DAY = 86_400_000;

function body(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { meterId: 'M-0001', readAt: '2026-11-20T09:30:00+03:00', values: { t1: 1234.5 }, ...overrides };
}

function errorsOf(result: ValidationResult): ValidationError[] {
  if (result.ok) throw new Error(`expected validation to fail, got ${JSON.stringify(result.reading)}`);
  return result.errors;
}

/** The single error reported at `path`; fails when there is none or several. */
function errorAt(result: ValidationResult, path: string): ValidationError {
  const matching = errorsOf(result).filter((e) => e.path === path);
  expect(matching, `errors at ${path} in ${JSON.stringify(errorsOf(result))}`).toHaveLength(1);
  return matching[0]!;
}

function validate(input: unknown, now = NOW) {
  return validateReading(input, now);
}

describe('validateReading: a valid reading', () => {
  it('accepts a minimal reading and returns it in canonical form', () => {
    const result = validate(body());
    expect(result).toEqual({
      ok: true,
      reading: { meterId: 'M-0001', readAt: '2026-11-20T06:30:00.000Z', values: { t1: 1234.5 } },
    });
  });

  it('accepts every field together', () => {
    const result = validate(body({ accountId: '00012345678901234567', values: { t1: 1, t2: 2, t3: 3 }, source: 'ami' }));
    expect(result).toEqual({
      ok: true,
      reading: {
        meterId: 'M-0001',
        accountId: '00012345678901234567',
        readAt: '2026-11-20T06:30:00.000Z',
        values: { t1: 1, t2: 2, t3: 3 },
        source: 'ami',
      },
    });
  });

  it.each([
    ['2026-11-20T09:30:00+03:00', '2026-11-20T06:30:00.000Z'],
    ['2026-11-20T09:30:00Z', '2026-11-20T09:30:00.000Z'],
    ['2026-11-20T01:15:30.5-05:00', '2026-11-20T06:15:30.500Z'],
    ['2026-11-20T09:30+03:00', '2026-11-20T06:30:00.000Z'],
    ['2026-11-20T15:00:00+0300', '2026-11-20T12:00:00.000Z'],
  ])('normalises readAt %s to UTC ISO %s', (readAt, expected) => {
    const result = validate(body({ readAt }));
    expect(result.ok && result.reading.readAt).toBe(expected);
  });

  it('does not copy unexpected input into the output', () => {
    const input = body();
    const result = validate(input);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.reading).not.toBe(input);
      expect(result.reading.values).not.toBe(input.values);
      expect(Object.keys(result.reading)).toEqual(['meterId', 'readAt', 'values']);
    }
  });
});

describe('validateReading: input that is not an object', () => {
  it.each([
    ['null', null],
    ['array', [body()]],
    ['string', 'M-0001'],
    ['number', 42],
    ['undefined', undefined],
  ])('rejects %s as a shape error at $', (_name, input) => {
    const errors = errorsOf(validate(input));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: '$', kind: 'shape' });
  });

  it('uses the path prefix for a batch item that is not an object', () => {
    const errors = errorsOf(validateReading(null, NOW, DEFAULT_RULES, { batchItem: true, pathPrefix: 'readings[7]' }));
    expect(errors).toEqual([expect.objectContaining({ path: 'readings[7]', kind: 'shape' })]);
  });
});

describe('validateReading: meterId', () => {
  it.each([
    ['one character', 'a'],
    ['32 characters', 'A'.repeat(32)],
    ['letters, digits, _ and -', 'aZ09_-'],
  ])('accepts %s', (_name, meterId) => {
    expect(validate(body({ meterId })).ok).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['33 characters', 'A'.repeat(33)],
    ['non-ASCII letters', 'Счётчик1'],
    ['a NUL byte', 'M1\u0000'],
    ['a NUL byte in the middle', 'M\u00001'],
    ['a newline at the end', 'M1\n'],
    ['a tab', 'M\t1'],
    ['a DEL character', 'M1\u007f'],
    ['a space', 'M 1'],
    ['a dot', 'M.1'],
    ['a slash', 'M/1'],
    ['a colon (Redis key separator)', 'M:1'],
    ['a fullwidth digit', 'M１'],
  ])('rejects %s as a value error', (_name, meterId) => {
    expect(errorAt(validate(body({ meterId })), 'meterId').kind).toBe('value');
  });

  it('requires meterId (shape error)', () => {
    const input = body();
    delete input.meterId;
    expect(errorAt(validate(input), 'meterId')).toMatchObject({ kind: 'shape', message: 'is required' });
  });

  it.each([
    ['number', 1234],
    ['null', null],
    ['array', ['M1']],
    ['object', { id: 'M1' }],
  ])('rejects a %s meterId as a shape error', (_name, meterId) => {
    expect(errorAt(validate(body({ meterId })), 'meterId').kind).toBe('shape');
  });
});

describe('validateReading: accountId', () => {
  it('is optional', () => {
    const result = validate(body());
    expect(result.ok && 'accountId' in result.reading).toBe(false);
  });

  it.each(['1', '0', '12345678901234567890'])('accepts %s', (accountId) => {
    const result = validate(body({ accountId }));
    expect(result.ok && result.reading.accountId).toBe(accountId);
  });

  it.each([
    ['empty', ''],
    ['21 digits', '123456789012345678901'],
    ['a letter', '12a'],
    ['a sign', '-12'],
    ['a decimal point', '12.5'],
    ['a space', '12 34'],
    ['Arabic-Indic digits', '١٢٣'],
    ['a trailing newline', '123\n'],
  ])('rejects %s as a value error', (_name, accountId) => {
    expect(errorAt(validate(body({ accountId })), 'accountId').kind).toBe('value');
  });

  it.each([
    ['number', 12345],
    ['null', null],
    ['boolean', true],
  ])('rejects a %s accountId as a shape error', (_name, accountId) => {
    expect(errorAt(validate(body({ accountId })), 'accountId').kind).toBe('shape');
  });
});

describe('validateReading: readAt', () => {
  it('requires readAt (shape error)', () => {
    const input = body();
    delete input.readAt;
    expect(errorAt(validate(input), 'readAt')).toMatchObject({ kind: 'shape', message: 'is required' });
  });

  it.each([
    ['number (epoch ms)', NOW],
    ['null', null],
    ['object', { iso: '2026-11-20T09:30:00Z' }],
  ])('rejects a %s readAt as a shape error', (_name, readAt) => {
    expect(errorAt(validate(body({ readAt })), 'readAt').kind).toBe('shape');
  });

  it.each([
    ['no offset', '2026-11-20T09:30:00'],
    ['no offset, with fraction', '2026-11-20T09:30:00.000'],
    ['a date only', '2026-11-20'],
    ['February 30th', '2026-02-30T10:00:00Z'],
    ['February 29th of a non-leap year', '2026-02-29T10:00:00Z'],
    ['April 31st', '2026-04-31T10:00:00Z'],
    ['month 13', '2026-13-01T10:00:00Z'],
    ['month 00', '2026-00-10T10:00:00Z'],
    ['day 00', '2026-11-00T10:00:00Z'],
    ['hour 24', '2026-11-20T24:00:00Z'],
    ['minute 60', '2026-11-20T10:60:00Z'],
    ['second 60', '2026-11-20T10:00:60Z'],
    ['an offset of +25:00', '2026-11-20T10:00:00+25:00'],
    ['a space instead of T', '2026-11-20 09:30:00Z'],
    ['lower-case z', '2026-11-20T09:30:00z'],
    ['an RFC 2822 date', 'Fri, 20 Nov 2026 09:30:00 GMT'],
    ['trailing text', '2026-11-20T09:30:00Zjunk'],
    ['an empty string', ''],
  ])('rejects %s as a value error', (_name, readAt) => {
    expect(errorAt(validate(body({ readAt })), 'readAt').kind).toBe('value');
  });

  it('accepts February 29th of a leap year', () => {
    const now = Date.parse('2028-03-01T00:00:00Z');
    const result = validate(body({ readAt: '2028-02-29T10:00:00+03:00' }), now);
    expect(result.ok && result.reading.readAt).toBe('2028-02-29T07:00:00.000Z');
  });

  it.each(['1999-12-31T23:59:59Z', '1970-01-01T00:00:00Z', '0001-01-01T00:00:00Z'])('rejects %s, before 2000', (readAt) => {
    expect(errorAt(validate(body({ readAt })), 'readAt').kind).toBe('value');
  });

  it('accepts a reading 4 minutes in the future (clock skew)', () => {
    const readAt = new Date(NOW + 4 * MINUTE).toISOString();
    expect(validate(body({ readAt })).ok).toBe(true);
  });

  it('accepts a reading exactly 5 minutes in the future', () => {
    const readAt = new Date(NOW + 5 * MINUTE).toISOString();
    expect(validate(body({ readAt })).ok).toBe(true);
  });

  it('rejects a reading 6 minutes in the future', () => {
    const readAt = new Date(NOW + 6 * MINUTE).toISOString();
    const error = errorAt(validate(body({ readAt })), 'readAt');
    expect(error.kind).toBe('value');
    expect(error.message).toMatch(/future/);
  });

  it('applies the future limit to the instant, not the local wall time', () => {
    // 15:04 in Moscow is 12:04 UTC: 4 minutes ahead of NOW, so accepted.
    expect(validate(body({ readAt: '2026-11-20T15:04:00+03:00' })).ok).toBe(true);
    // 12:06 at -00:00 is 6 minutes ahead.
    expect(validate(body({ readAt: '2026-11-20T12:06:00-00:00' })).ok).toBe(false);
  });

  it('uses the configured future limit', () => {
    const readAt = new Date(NOW + 2 * MINUTE).toISOString();
    const strict = { ...DEFAULT_RULES, maxFutureMs: MINUTE };
    expect(validateReading(body({ readAt }), NOW, strict).ok).toBe(false);
  });

  it('accepts a reading 62 days old with the default rules, rejects 63 days', () => {
    expect(DEFAULT_RULES.maxAgeDays).toBe(62);
    expect(validate(body({ readAt: new Date(NOW - 62 * DAY + MINUTE).toISOString() })).ok).toBe(true);
    const error = errorAt(validate(body({ readAt: new Date(NOW - 63 * DAY).toISOString() })), 'readAt');
    expect(error.kind).toBe('value');
    expect(error.message).toMatch(/older than 62 days/);
  });

  it('uses the configured maximum age', () => {
    const rules = { ...DEFAULT_RULES, maxAgeDays: 7 };
    expect(validateReading(body({ readAt: new Date(NOW - 6 * DAY).toISOString() }), NOW, rules).ok).toBe(true);
    const result = validateReading(body({ readAt: new Date(NOW - 8 * DAY).toISOString() }), NOW, rules);
    expect(errorAt(result, 'readAt').message).toMatch(/older than 7 days/);
  });
});

describe('validateReading: values', () => {
  it('requires values (shape error)', () => {
    const input = body();
    delete input.values;
    expect(errorAt(validate(input), 'values')).toMatchObject({ kind: 'shape', message: 'is required' });
  });

  it.each([
    ['number', 12],
    ['array', [1, 2, 3]],
    ['null', null],
    ['string', '{"t1":1}'],
  ])('rejects a %s as values (shape error)', (_name, values) => {
    expect(errorAt(validate(body({ values })), 'values').kind).toBe('shape');
  });

  it('requires t1 (shape error)', () => {
    expect(errorAt(validate(body({ values: {} })), 'values.t1')).toMatchObject({ kind: 'shape', message: 'is required' });
    expect(errorAt(validate(body({ values: { t2: 5 } })), 'values.t1').kind).toBe('shape');
  });

  it('accepts t1 with t2, and t1 with t2 and t3', () => {
    const two = validate(body({ values: { t1: 1, t2: 2 } }));
    expect(two.ok && two.reading.values).toEqual({ t1: 1, t2: 2 });
    const three = validate(body({ values: { t1: 1, t2: 2, t3: 3 } }));
    expect(three.ok && three.reading.values).toEqual({ t1: 1, t2: 2, t3: 3 });
  });

  it('rejects t3 without t2 as a value error', () => {
    const error = errorAt(validate(body({ values: { t1: 1, t3: 3 } })), 'values.t3');
    expect(error.kind).toBe('value');
  });

  it('rejects an unknown zone as a shape error', () => {
    expect(errorAt(validate(body({ values: { t1: 1, t4: 4 } })), 'values.t4').kind).toBe('shape');
  });

  it.each([
    ['zero', 0],
    ['an integer', 42],
    ['123.456', 123.456],
    ['0.001', 0.001],
    ['1.005', 1.005],
    ['999999999.999 (largest allowed)', 999_999_999.999],
    ['999999999', 999_999_999],
  ])('accepts %s', (_name, t1) => {
    const result = validate(body({ values: { t1 } }));
    expect(result.ok && result.reading.values.t1).toBe(t1);
  });

  it.each([
    ['negative', -1],
    ['slightly negative', -0.001],
    ['1e9 exactly', 1e9],
    ['above 1e9', 1e9 + 1],
    ['1e300', 1e300],
    ['four decimals', 0.1234],
    ['four decimals on a large value', 123.4567],
    ['a tiny fraction', 1e-10],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('rejects %s as a value error', (_name, t1) => {
    expect(errorAt(validate(body({ values: { t1 } })), 'values.t1').kind).toBe('value');
  });

  it('rejects 1e309 from a real JSON body (parsed as Infinity)', () => {
    const values = JSON.parse('{"t1":1e309}') as Record<string, unknown>;
    expect(values.t1).toBe(Number.POSITIVE_INFINITY);
    const error = errorAt(validate(body({ values })), 'values.t1');
    expect(error.kind).toBe('value');
    expect(error.message).toMatch(/finite/);
  });

  it('applies the rules to t2 and t3 as well', () => {
    const errors = errorsOf(validate(body({ values: { t1: 1, t2: -5, t3: 0.5555 } })));
    expect(errors.map((e) => [e.path, e.kind])).toEqual(
      expect.arrayContaining([
        ['values.t2', 'value'],
        ['values.t3', 'value'],
      ]),
    );
  });

  it.each([
    ['a numeric string', '123.4'],
    ['an empty string', ''],
    ['null', null],
    ['a boolean', true],
    ['an object', { value: 1 }],
    ['an array', [1]],
  ])('rejects %s as a zone value (shape error)', (_name, t1) => {
    expect(errorAt(validate(body({ values: { t1 } })), 'values.t1').kind).toBe('shape');
  });

  it('rejects a string t2 as a shape error', () => {
    expect(errorAt(validate(body({ values: { t1: 1, t2: '2' } })), 'values.t2').kind).toBe('shape');
  });
});

describe('validateReading: source', () => {
  it.each(['web', 'app', 'sms', 'ivr', 'operator', 'ami'])('accepts %s', (source) => {
    const result = validate(body({ source }));
    expect(result.ok && result.reading.source).toBe(source);
  });

  it.each(['WEB', 'email', '', 'web '])('rejects %j as a value error', (source) => {
    expect(errorAt(validate(body({ source })), 'source').kind).toBe('value');
  });

  it.each([
    ['number', 1],
    ['null', null],
    ['array', ['web']],
  ])('rejects a %s source as a shape error', (_name, source) => {
    expect(errorAt(validate(body({ source })), 'source').kind).toBe('shape');
  });
});

describe('validateReading: unknown fields and prototype keys', () => {
  afterEach(() => {
    // Nothing may have leaked onto Object.prototype.
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(({} as Record<string, unknown>).meterId).toBeUndefined();
  });

  it('rejects an unknown top-level field as a shape error', () => {
    expect(errorAt(validate(body({ meter_id: 'x' })), 'meter_id').kind).toBe('shape');
  });

  it('reports each unknown field separately', () => {
    const paths = errorsOf(validate(body({ a: 1, b: 2 }))).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['a', 'b']));
  });

  it('reports an own __proto__ key as an unknown field, without prototype pollution', () => {
    const input: unknown = JSON.parse(
      '{"__proto__":{"x":1,"meterId":"polluted"},"meterId":"M1","readAt":"2026-11-20T09:30:00Z","values":{"t1":1}}',
    );
    expect(Object.keys(input as object)).toContain('__proto__');
    const error = errorAt(validate(input), '__proto__');
    expect(error.kind).toBe('shape');
    expect(error.message).toBe('unknown field');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it.each(['constructor', 'prototype', 'hasOwnProperty', 'toString'])('reports an own %s key as an unknown field', (key) => {
    const input: unknown = JSON.parse(`{"${key}":{"x":1},"meterId":"M1","readAt":"2026-11-20T09:30:00Z","values":{"t1":1}}`);
    expect(errorAt(validate(input), key)).toMatchObject({ kind: 'shape', message: 'unknown field' });
  });

  it('reports __proto__ and constructor inside values as unknown fields', () => {
    const input: unknown = JSON.parse(
      '{"meterId":"M1","readAt":"2026-11-20T09:30:00Z","values":{"t1":1,"__proto__":{"t2":5,"x":1},"constructor":{"prototype":{"x":1}}}}',
    );
    const errors = errorsOf(validate(input));
    expect(errors.map((e) => [e.path, e.kind])).toEqual(
      expect.arrayContaining([
        ['values.__proto__', 'shape'],
        ['values.constructor', 'shape'],
      ]),
    );
    expect(errors.some((e) => e.path === 'values.t3')).toBe(false);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(({} as Record<string, unknown>).t2).toBeUndefined();
  });

  it('does not treat a __proto__ payload as the reading fields', () => {
    const input: unknown = JSON.parse('{"__proto__":{"meterId":"M1","readAt":"2026-11-20T09:30:00Z","values":{"t1":1}}}');
    const paths = errorsOf(validate(input)).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['__proto__', 'meterId', 'readAt', 'values']));
  });
});

describe('validateReading: batch items and submissionId', () => {
  it('rejects submissionId on a single reading (not a batch item)', () => {
    expect(errorAt(validate(body({ submissionId: 'sub-1' })), 'submissionId')).toMatchObject({ kind: 'shape', message: 'unknown field' });
  });

  it('accepts submissionId on a batch item and returns it beside the reading', () => {
    const result = validateReading(body({ submissionId: 'sub-1' }), NOW, DEFAULT_RULES, { batchItem: true });
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.submissionId).toBe('sub-1');
      expect(result.reading).not.toHaveProperty('submissionId');
    }
  });

  it('leaves submissionId out when a batch item has none', () => {
    const result = validateReading(body(), NOW, DEFAULT_RULES, { batchItem: true });
    expect(result.ok).toBe(true);
    expect(result).not.toHaveProperty('submissionId');
  });

  it.each([
    ['empty', '', 'value'],
    ['with a space', 'a b', 'value'],
    ['non-ASCII', 'ключ', 'value'],
    ['129 characters', 'k'.repeat(129), 'value'],
    ['a number', 42, 'shape'],
  ])('rejects a submissionId %s', (_name, submissionId, kind) => {
    const result = validateReading(body({ submissionId }), NOW, DEFAULT_RULES, { batchItem: true });
    expect(errorAt(result, 'submissionId').kind).toBe(kind);
  });

  it('accepts a 128-character printable submissionId', () => {
    const submissionId = '!~'.repeat(64);
    const result = validateReading(body({ submissionId }), NOW, DEFAULT_RULES, { batchItem: true });
    expect(result.ok && result.submissionId).toBe(submissionId);
  });

  it('prefixes every error path with pathPrefix', () => {
    const input = { meterId: 'Счётчик1', accountId: 7, readAt: '2026-11-20T09:30:00', values: { t1: -1, t3: 1 }, source: 'fax', extra: 1 };
    const errors = errorsOf(validateReading(input, NOW, DEFAULT_RULES, { batchItem: true, pathPrefix: 'readings[3]' }));
    expect(errors.map((e) => e.path).sort()).toEqual(
      [
        'readings[3].accountId',
        'readings[3].extra',
        'readings[3].meterId',
        'readings[3].readAt',
        'readings[3].source',
        'readings[3].values.t1',
        'readings[3].values.t3',
      ].sort(),
    );
  });

  it('reports a missing field of a batch item with its prefixed path', () => {
    const errors = errorsOf(validateReading({ readAt: '2026-11-20T09:30:00Z', values: { t1: 1 } }, NOW, DEFAULT_RULES, { batchItem: true, pathPrefix: 'readings[0]' }));
    expect(errors).toEqual([expect.objectContaining({ path: 'readings[0].meterId', kind: 'shape' })]);
  });
});

describe('validateReading: reports every failing field', () => {
  it('returns one error per failing field, each with its path', () => {
    const errors = errorsOf(validate({ meterId: '', readAt: 'yesterday', values: { t1: '5' }, source: 'fax' }));
    expect(errors.map((e) => e.path).sort()).toEqual(['meterId', 'readAt', 'source', 'values.t1']);
    for (const e of errors) expect(typeof e.message).toBe('string');
  });
});

describe('statusForErrors', () => {
  const shape: ValidationError = { path: 'x', kind: 'shape', message: 'unknown field' };
  const value: ValidationError = { path: 'values.t1', kind: 'value', message: 'must be >= 0' };

  it('answers 422 when every error is a value error', () => {
    expect(statusForErrors([value])).toBe(422);
    expect(statusForErrors([value, { ...value, path: 'readAt' }])).toBe(422);
  });

  it('answers 400 when any error is a shape error', () => {
    expect(statusForErrors([shape])).toBe(400);
    expect(statusForErrors([value, shape])).toBe(400);
    expect(statusForErrors([shape, value])).toBe(400);
  });

  it('maps real validation results to the right status', () => {
    expect(statusForErrors(errorsOf(validate(body({ values: { t1: 0.1234 } }))))).toBe(422);
    expect(statusForErrors(errorsOf(validate(body({ values: { t1: '1' } }))))).toBe(400);
    expect(statusForErrors(errorsOf(validate(body({ values: { t1: -1 }, unknown: true }))))).toBe(400);
  });
});

describe('parseIsoWithOffset', () => {
  it('returns epoch milliseconds for a valid timestamp', () => {
    expect(parseIsoWithOffset('2026-11-20T09:30:00+03:00')).toBe(Date.parse('2026-11-20T06:30:00Z'));
  });

  it('returns undefined for impossible dates and missing offsets', () => {
    expect(parseIsoWithOffset('2026-02-30T00:00:00Z')).toBeUndefined();
    expect(parseIsoWithOffset('2026-11-20T09:30:00')).toBeUndefined();
  });
});
