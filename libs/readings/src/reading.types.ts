/** Where a reading came from; mirrors the supplier's intake channels. */
export const READING_SOURCES = ['web', 'app', 'sms', 'ivr', 'operator', 'ami'] as const;
export type ReadingSource = (typeof READING_SOURCES)[number];

/** Register values per tariff zone, cumulative kWh. */
export interface ZoneValues {
  t1: number;
  t2?: number;
  t3?: number;
}

/** A reading that passed validation, in canonical form (readAt normalised to UTC ISO). */
export interface ValidReading {
  meterId: string;
  accountId?: string;
  readAt: string;
  values: ZoneValues;
  source?: ReadingSource;
}

/** What travels through the queue: a validated reading plus what the API decided about it. */
export interface QueuedReading extends ValidReading {
  id: string;
  /** Billing period, YYYY-MM, in the configured time zone. */
  period: string;
  /** When the API accepted it (ISO); the latest submission for a meter and period wins. */
  receivedAt: string;
  /** The request that brought it: stored with the row (request_id), so a row can be traced to its request. */
  requestId?: string;
  /** The authenticated client that submitted it (api_clients.id): stored as client_id, what read:own may see. */
  clientId?: string;
}

export type ReadingFlag = 'regression' | 'spike';

export interface FieldError {
  path: string;
  message: string;
}
