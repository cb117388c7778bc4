import type { FieldError, ReadingFlag, ValidReading } from '#libs/readings';

export interface SubmitContext {
  idempotencyKey?: string;
  /** The authenticated client (api_clients.id): the scope of its idempotency keys and the owner of its readings. */
  clientId: string;
  requestId?: string;
  wait: boolean;
}

export interface ReadingAccepted {
  id: string;
  status: 'queued';
}

export type ReadingStoredNow =
  | (ValidReading & { id: string; status: 'stored'; period: string; flags: ReadingFlag[]; storedAt?: string })
  | { id: string; status: 'failed'; reason: string };

export interface BatchResult {
  accepted: { index: number; id: string }[];
  rejected: { index: number; errors: FieldError[] }[];
}
