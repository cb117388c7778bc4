/**
 * Keeps the first item for each id. PostgreSQL's INSERT ... ON CONFLICT fails the whole
 * statement (21000) when two rows of one statement share a key, and CockroachDB's UPSERT
 * would silently keep the last: collapsing first makes both behave the same.
 */
export function collapseById<T extends { id: string }>(items: readonly T[]): { unique: T[]; duplicates: number } {
  const seen = new Set<string>();
  const unique: T[] = [];
  for (const item of items) {
    if (seen.has(item.id)) continue;
    seen.add(item.id);
    unique.push(item);
  }
  return { unique, duplicates: items.length - unique.length };
}
