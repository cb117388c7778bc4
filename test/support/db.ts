import pg from 'pg';

/** A plain pg client for assertions: tests check the database directly, not through the API. */
export async function withDb<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface StoredRow {
  id: string;
  meter_id: string;
  t1: string;
  t2: string | null;
  t3: string | null;
  read_at: Date;
  flags: string[];
}

/** How many rows each id has, for "exactly once" checks. */
export async function rowsByIds(url: string, ids: string[]): Promise<Map<string, StoredRow[]>> {
  return withDb(url, async (c) => {
    const { rows } = await c.query<StoredRow>('SELECT id::text, meter_id, t1::text, t2::text, t3::text, read_at, flags FROM readings WHERE id = ANY($1::uuid[])', [ids]);
    const byId = new Map<string, StoredRow[]>();
    for (const r of rows) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
    return byId;
  });
}
