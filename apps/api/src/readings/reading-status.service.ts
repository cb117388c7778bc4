import { Injectable } from '@nestjs/common';
import { type ApiClient, ReadingStore, rowToView } from '#libs/database';
import { seesAll } from '../auth/auth.decorators.js';
import { DatabaseConnector } from '../database/database-connector.js';
import { ApiError } from '../http/api-error.js';
import { IntakeQueue } from '../intake/intake-queue.js';

/**
 * A queued or refused reading as clients see it: without requestId (internal), and without the
 * notify flag that jobs and payloads recorded before it travelled beside the reading still carry.
 */
function publicFields(reading: object): Record<string, unknown> {
  const { notify: _n, requestId: _r, clientId: _c, ...rest } = reading as Record<string, unknown>;
  return rest;
}

/** Whether `client` may see a reading submitted by `owner` (null: stored before clients existed, operators only). */
function maySee(client: ApiClient, owner: unknown): boolean {
  return seesAll(client) || (typeof owner === 'string' && owner === client.id);
}

/**
 * Answers "what happened to reading X" from the primary (read-your-writes): stored rows and
 * isolated failures live in the database, queued readings are found through their marker.
 */
@Injectable()
export class ReadingStatusService {
  constructor(
    private readonly store: ReadingStore,
    private readonly intake: IntakeQueue,
    private readonly database: DatabaseConnector,
  ) {}

  /** `null`: the database has the reading, but `client` may not see it (answered like a missing one). */
  private async fromDatabase(id: string, client: ApiClient): Promise<Record<string, unknown> | null | undefined> {
    const found = await this.store.find(id);
    if (found?.status === 'stored') return maySee(client, found.row.client_id) ? { ...rowToView(found.row) } : null;
    if (found?.status === 'failed') {
      const payload = JSON.parse(found.payload) as Record<string, unknown>;
      if (!maySee(client, payload.clientId)) return null;
      return { ...publicFields(payload), id, status: 'failed', flags: [], reason: found.reason, failedAt: found.failedAt.toISOString() };
    }
    return undefined;
  }

  /** The reading as `client` may see it: undefined when it does not exist or belongs to someone else. */
  async find(id: string, client: ApiClient): Promise<Record<string, unknown> | undefined> {
    // The marker is read first: if the writer commits in between, the database lookup still sees the row.
    this.database.assertConnected();
    let redisDown = false;
    const pending = await this.intake.locate(id).catch(() => {
      redisDown = true;
      return undefined;
    });
    const stored = await this.fromDatabase(id, client);
    if (stored === null) return undefined;
    if (stored) return stored;
    if (redisDown) {
      // Not in the database, and the queue cannot be asked: "unknown" would be a lie, so 503.
      throw new ApiError(503, 'queue_unavailable', 'the reading is not stored yet and the queue is unreachable; retry shortly', [], { 'retry-after': '1' });
    }
    if (!pending?.reading || !maySee(client, pending.reading.clientId)) return undefined;
    const reading = publicFields(pending.reading);
    if (pending.state === 'failed') return { ...reading, status: 'failed', flags: [], reason: pending.reason };
    return { ...reading, status: 'queued', flags: [] };
  }
}
