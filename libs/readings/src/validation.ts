import { READING_SOURCES, type FieldError, type ReadingSource, type ValidReading, type ZoneValues } from './reading.types.js';

export interface ValidationRules {
  /** Oldest acceptable readAt, in days before now. */
  maxAgeDays: number;
  /** How far into the future readAt may be (clock skew of meters and phones). */
  maxFutureMs: number;
}

export const DEFAULT_RULES: ValidationRules = { maxAgeDays: 62, maxFutureMs: 5 * 60_000 };

/**
 * `shape` errors (unknown field, wrong type, missing field) answer 400;
 * `value` errors (out of range, too precise, too old) answer 422.
 */
export type ErrorKind = 'shape' | 'value';
export interface ValidationError extends FieldError {
  kind: ErrorKind;
}

export type ValidationResult =
  | { ok: true; reading: ValidReading; submissionId?: string }
  | { ok: false; errors: ValidationError[] };

const READING_FIELDS = new Set(['meterId', 'accountId', 'readAt', 'values', 'source']);
const BATCH_ITEM_FIELDS = new Set([...READING_FIELDS, 'submissionId']);
const ZONE_FIELDS = new Set(['t1', 't2', 't3']);
const SOURCES: ReadonlySet<string> = new Set(READING_SOURCES);

const METER_ID = /^[A-Za-z0-9_-]{1,32}$/;
const ACCOUNT_ID = /^[0-9]{1,20}$/;
/** Printable ASCII only: the key ends up in Redis keys and logs. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;
/** ISO-8601 date-time that must carry an offset (Z or ±hh:mm); a bare local time is ambiguous. */
const ISO_WITH_OFFSET =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})$/;
const MAX_VALUE = 1e9;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isValidIdempotencyKey(key: string): boolean {
  return IDEMPOTENCY_KEY.test(key);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function checkZone(values: Record<string, unknown>, zone: 't1' | 't2' | 't3', path: string, errors: ValidationError[]): number | undefined {
  const v = values[zone];
  if (v === undefined) return undefined;
  const p = `${path}.${zone}`;
  if (typeof v !== 'number') {
    errors.push({ path: p, kind: 'shape', message: `must be a number, got ${describe(v)}` });
    return undefined;
  }
  if (!Number.isFinite(v)) {
    errors.push({ path: p, kind: 'value', message: 'must be a finite number' });
  } else if (v < 0) {
    errors.push({ path: p, kind: 'value', message: 'must be >= 0' });
  } else if (v >= MAX_VALUE) {
    errors.push({ path: p, kind: 'value', message: 'must be < 1e9' });
  } else if (Math.round(v * 1000) / 1000 !== v) {
    errors.push({ path: p, kind: 'value', message: 'must have at most 3 decimals' });
  } else {
    return v;
  }
  return undefined;
}

/** Parses an ISO-8601 timestamp with offset; returns epoch ms or undefined when it is not a real instant. */
export function parseIsoWithOffset(text: string): number | undefined {
  const m = ISO_WITH_OFFSET.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1) return undefined;
  if (day > new Date(Date.UTC(Number(y), month, 0)).getUTCDate()) return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Validates one reading (a request body, or one item of a batch when `batchItem` is set).
 * Hand-written rather than decorator-driven: it runs once per reading on the hot path,
 * reports every failing field with its path, and never touches the prototype chain.
 */
export function validateReading(
  input: unknown,
  now: number,
  rules: ValidationRules = DEFAULT_RULES,
  options: { batchItem?: boolean; pathPrefix?: string } = {},
): ValidationResult {
  const prefix = options.pathPrefix ?? '';
  const at = (field: string) => (prefix ? `${prefix}.${field}` : field);
  const errors: ValidationError[] = [];
  if (!isPlainObject(input)) {
    return { ok: false, errors: [{ path: prefix || '$', kind: 'shape', message: `must be a JSON object, got ${describe(input)}` }] };
  }
  const allowed = options.batchItem ? BATCH_ITEM_FIELDS : READING_FIELDS;
  for (const key of Object.keys(input)) {
    if (!allowed.has(key)) errors.push({ path: at(key), kind: 'shape', message: 'unknown field' });
  }

  const { meterId, accountId, readAt, values, source, submissionId } = input;
  if (meterId === undefined) errors.push({ path: at('meterId'), kind: 'shape', message: 'is required' });
  else if (typeof meterId !== 'string') errors.push({ path: at('meterId'), kind: 'shape', message: `must be a string, got ${describe(meterId)}` });
  else if (!METER_ID.test(meterId)) errors.push({ path: at('meterId'), kind: 'value', message: 'must be 1-32 characters of A-Z, a-z, 0-9, _ or -' });

  if (accountId !== undefined) {
    if (typeof accountId !== 'string') errors.push({ path: at('accountId'), kind: 'shape', message: `must be a string of digits, got ${describe(accountId)}` });
    else if (!ACCOUNT_ID.test(accountId)) errors.push({ path: at('accountId'), kind: 'value', message: 'must be 1-20 digits' });
  }

  let readAtMs: number | undefined;
  if (readAt === undefined) errors.push({ path: at('readAt'), kind: 'shape', message: 'is required' });
  else if (typeof readAt !== 'string') errors.push({ path: at('readAt'), kind: 'shape', message: `must be an ISO-8601 string, got ${describe(readAt)}` });
  else {
    readAtMs = parseIsoWithOffset(readAt);
    if (readAtMs === undefined) {
      errors.push({ path: at('readAt'), kind: 'value', message: 'must be an ISO-8601 date-time with an offset, e.g. 2026-11-20T09:30:00+03:00' });
    } else if (readAtMs > now + rules.maxFutureMs) {
      errors.push({ path: at('readAt'), kind: 'value', message: `must not be more than ${Math.round(rules.maxFutureMs / 60_000)} minutes in the future` });
      readAtMs = undefined;
    } else if (readAtMs < now - rules.maxAgeDays * 86_400_000) {
      errors.push({ path: at('readAt'), kind: 'value', message: `must not be older than ${rules.maxAgeDays} days` });
      readAtMs = undefined;
    }
  }

  let zones: ZoneValues | undefined;
  const valuesPath = at('values');
  if (values === undefined) errors.push({ path: valuesPath, kind: 'shape', message: 'is required' });
  else if (!isPlainObject(values)) errors.push({ path: valuesPath, kind: 'shape', message: `must be an object, got ${describe(values)}` });
  else {
    const before = errors.length;
    for (const key of Object.keys(values)) {
      if (!ZONE_FIELDS.has(key)) errors.push({ path: `${valuesPath}.${key}`, kind: 'shape', message: 'unknown field' });
    }
    if (values.t1 === undefined) errors.push({ path: `${valuesPath}.t1`, kind: 'shape', message: 'is required' });
    if (values.t3 !== undefined && values.t2 === undefined) {
      errors.push({ path: `${valuesPath}.t3`, kind: 'value', message: 'is only allowed together with t2' });
    }
    const t1 = checkZone(values, 't1', valuesPath, errors);
    const t2 = checkZone(values, 't2', valuesPath, errors);
    const t3 = checkZone(values, 't3', valuesPath, errors);
    if (errors.length === before && t1 !== undefined) {
      zones = { t1 };
      if (t2 !== undefined) zones.t2 = t2;
      if (t3 !== undefined) zones.t3 = t3;
    }
  }

  if (source !== undefined && (typeof source !== 'string' || !SOURCES.has(source))) {
    errors.push({
      path: at('source'),
      kind: typeof source === 'string' ? 'value' : 'shape',
      message: `must be one of ${READING_SOURCES.join(', ')}`,
    });
  }

  if (submissionId !== undefined) {
    if (typeof submissionId !== 'string') errors.push({ path: at('submissionId'), kind: 'shape', message: `must be a string, got ${describe(submissionId)}` });
    else if (!IDEMPOTENCY_KEY.test(submissionId)) errors.push({ path: at('submissionId'), kind: 'value', message: 'must be 1-128 printable ASCII characters' });
  }

  if (errors.length > 0 || readAtMs === undefined || zones === undefined) {
    return { ok: false, errors };
  }
  const reading: ValidReading = {
    meterId: meterId as string,
    readAt: new Date(readAtMs).toISOString(),
    values: zones,
  };
  if (accountId !== undefined) reading.accountId = accountId as string;
  if (source !== undefined) reading.source = source as ReadingSource;
  return submissionId === undefined ? { ok: true, reading } : { ok: true, reading, submissionId: submissionId as string };
}

/** 400 when any error is about the shape of the input, else 422. */
export function statusForErrors(errors: readonly ValidationError[]): 400 | 422 {
  return errors.some((e) => e.kind === 'shape') ? 400 : 422;
}
