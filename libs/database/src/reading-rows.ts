import type { ReadingFlag, ZoneValues } from '#libs/readings';

/** A readings row as the dialect's SELECTs return it (numerics as text, so no float parsing by pg). */
export interface ReadingRow {
  id: string;
  meter_id: string;
  account_id: string | null;
  period: string;
  read_at: Date;
  t1: string;
  t2: string | null;
  t3: string | null;
  source: string | null;
  flags: string[];
  received_at: Date;
  stored_at: Date;
  request_id: string | null;
  client_id: string | null;
}

export interface StoredReadingView {
  id: string;
  status: 'stored';
  meterId: string;
  accountId?: string;
  period: string;
  readAt: string;
  values: ZoneValues;
  source?: string;
  flags: ReadingFlag[];
  receivedAt: string;
  storedAt: string;
}

export function rowToValues(row: { t1: string; t2: string | null; t3: string | null }): ZoneValues {
  const values: ZoneValues = { t1: Number(row.t1) };
  if (row.t2 !== null) values.t2 = Number(row.t2);
  if (row.t3 !== null) values.t3 = Number(row.t3);
  return values;
}

export function rowToView(row: ReadingRow): StoredReadingView {
  const view: StoredReadingView = {
    id: row.id,
    status: 'stored',
    meterId: row.meter_id,
    period: row.period,
    readAt: row.read_at.toISOString(),
    values: rowToValues(row),
    flags: row.flags as ReadingFlag[],
    receivedAt: row.received_at.toISOString(),
    storedAt: row.stored_at.toISOString(),
  };
  if (row.account_id !== null) view.accountId = row.account_id;
  if (row.source !== null) view.source = row.source;
  return view;
}
