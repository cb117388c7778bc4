import { createHash, randomUUID } from 'node:crypto';
import type { ValidReading } from './reading.types.js';

function uuidFromDigest(digest: Buffer): string {
  const b = Buffer.from(digest.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x50; // version 5 layout: name-based
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The id of a reading submitted with an idempotency key is derived from the key, so every
 * resend names the same database row even if the Redis record of the key has expired.
 */
export function readingIdForKey(scope: string, key: string): string {
  return uuidFromDigest(createHash('sha256').update(`meter-intake:${scope}:${key}`).digest());
}

export function newReadingId(): string {
  return randomUUID();
}

/** A fingerprint of what was submitted: the same key with a different fingerprint is a conflict (409). */
export function readingFingerprint(reading: ValidReading): string {
  const v = reading.values;
  return createHash('sha256')
    .update(JSON.stringify([reading.meterId, reading.accountId ?? null, reading.readAt, v.t1, v.t2 ?? null, v.t3 ?? null, reading.source ?? null]))
    .digest('base64url')
    .slice(0, 22);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(text: string): boolean {
  return UUID.test(text);
}
