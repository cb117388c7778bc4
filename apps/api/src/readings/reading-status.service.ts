import { Injectable } from '@nestjs/common';
import { ReadingStore, rowToView } from '#libs/database';
import { DatabaseConnector } from '../database/database-connector.js';
import { ApiError } from '../http/api-error.js';
import { IntakeQueue } from '../intake/intake-queue.js';

/**
 * A queued or refused reading as clients see it: without requestId (internal), and without the
 * notify flag that jobs and payloads recorded before it travelled beside the reading still carry.
 */
function publicFields(reading: object): Record<string, unknown> {
  const { notify: _n, requestId: _r, ...rest } = reading as Record<string, unknown>;
  return rest;
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

  private async fromDatabase(id: string): Promise<Record<string, unknown> | undefined> {
    const found = await this.store.find(id);
    if (found?.status === 'stored') return { ...rowToView(found.row) };
    if (found?.status === 'failed') {
      return { ...publicFields(JSON.parse(found.payload) as Record<string, unknown>), id, status: 'failed', flags: [], reason: found.reason, failedAt: found.failedAt.toISOString() };
    }
    return undefined;
  }

  async find(id: string): Promise<Record<string, unknown> | undefined> {
    // The marker is read first: if the writer commits in between, the database lookup still sees the row.
    this.database.assertConnected();
    let redisDown = false;
    const pending = await this.intake.pendingJob(id).catch(() => {
      redisDown = true;
      return undefined;
    });
    const stored = await this.fromDatabase(id);
    if (stored) return stored;
    if (redisDown) {
      // Not in the database, and the queue cannot be asked: "unknown" would be a lie, so 503.
      throw new ApiError(503, 'queue_unavailable', 'the reading is not stored yet and the queue is unreachable; retry shortly', [], { 'retry-after': '1' });
    }
    if (!pending?.reading) return undefined;
    const reading = publicFields(pending.reading);
    if (pending.state === 'failed') return { ...reading, status: 'failed', flags: [], reason: pending.failedReason ?? 'job failed' };
    return { ...reading, status: 'queued', flags: [] };
  }
}
