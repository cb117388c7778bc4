import { describe, it, expect } from 'vitest';
import { collapseById } from './batch.js';

describe('collapseById', () => {
  it('returns an empty result for no items', () => {
    expect(collapseById([])).toEqual({ unique: [], duplicates: 0 });
  });

  it('keeps every item when all ids differ, in order', () => {
    const items = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
    const { unique, duplicates } = collapseById(items);
    expect(unique).toEqual(items);
    expect(duplicates).toBe(0);
  });

  it('keeps the first item of each id and counts the duplicates', () => {
    const items = [
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
      { id: 'a', n: 3 },
      { id: 'c', n: 4 },
      { id: 'b', n: 5 },
      { id: 'a', n: 6 },
    ];
    const { unique, duplicates } = collapseById(items);
    expect(unique).toEqual([
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
      { id: 'c', n: 4 },
    ]);
    expect(duplicates).toBe(3);
  });

  it('returns the same objects, not copies', () => {
    const first = { id: 'x' };
    const { unique } = collapseById([first, { id: 'x' }]);
    expect(unique[0]).toBe(first);
  });

  it('does not modify the input', () => {
    const items = [{ id: 'a' }, { id: 'a' }];
    collapseById(items);
    expect(items).toHaveLength(2);
  });

  it('treats ids case-sensitively', () => {
    expect(collapseById([{ id: 'A' }, { id: 'a' }]).duplicates).toBe(0);
  });

  it('handles ids that look like Object.prototype keys', () => {
    const { unique, duplicates } = collapseById([{ id: '__proto__' }, { id: 'constructor' }, { id: '__proto__' }]);
    expect(unique.map((u) => u.id)).toEqual(['__proto__', 'constructor']);
    expect(duplicates).toBe(1);
  });
});
