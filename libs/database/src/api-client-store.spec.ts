import { describe, expect, it } from 'vitest';
import { API_KEY_PATTERN, generateApiKey, hashApiKey, isClientScope, keyPrefixOf, sameHash } from './api-client-store.js';

describe('client keys', () => {
  it('are mik_ and 256 random bits in base64url, different every time', () => {
    const keys = Array.from({ length: 200 }, generateApiKey);
    for (const k of keys) {
      expect(k).toMatch(API_KEY_PATTERN);
      expect(Buffer.from(k.slice(4), 'base64url')).toHaveLength(32);
    }
    expect(new Set(keys).size).toBe(200);
  });

  it('are stored as SHA-256 hex, and only a prefix that cannot stand in for the key is shown', () => {
    const k = generateApiKey();
    expect(hashApiKey(k)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(k)).toBe(hashApiKey(k));
    expect(hashApiKey(k)).not.toBe(hashApiKey(generateApiKey()));
    expect(keyPrefixOf(k)).toBe(k.slice(0, 12));
    expect(keyPrefixOf(k).length).toBeLessThan(k.length / 3);
  });

  it('compare hashes equal only when every byte is', () => {
    const h = hashApiKey(generateApiKey());
    expect(sameHash(h, h)).toBe(true);
    expect(sameHash(h, `${h.slice(0, 63)}${h[63] === '0' ? '1' : '0'}`)).toBe(false);
    expect(sameHash(h, h.slice(0, 62))).toBe(false);
    expect(sameHash('', '')).toBe(false);
  });

  it('refuse what is not a key without any lookup: the pattern', () => {
    for (const bad of ['', 'mik_', `mik_${'a'.repeat(42)}`, `mik_${'a'.repeat(44)}`, `MIK_${'a'.repeat(43)}`, `mik_${'a'.repeat(42)}=`, `mik_${'a'.repeat(42)}\n`, 'utility-portal']) {
      expect(API_KEY_PATTERN.test(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('know the four scopes and nothing else', () => {
    for (const s of ['submit', 'read:own', 'read:all', 'admin']) expect(isClientScope(s)).toBe(true);
    for (const s of ['read', 'Submit', 'read:*', '']) expect(isClientScope(s)).toBe(false);
  });
});
