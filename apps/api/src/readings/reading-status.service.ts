import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { dialectFor, type ReadingRow, rowToView, type SqlDialect } from '#libs/database';
import { DatabaseConnector } from '../database/database-connector.js';
import { ApiError } from '../http/api-error.js';
import { IntakeQueue } from '../intake/intake-queue.js';

/**
 * Answers "what happened to reading X" from the primary (read-your-writes): stored rows and
 * isolated failures live in the database, queued readings are found through their marker.
 */
@Injectable()
export class ReadingStatusService {
  private readonly dialect: SqlDialect;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly intake: IntakeQueue,
    private readonly database: DatabaseConnector,
  ) {
    this.dialect = dialectFor(config.db.backend);
  }

  private async fromDatabase(id: string): Promise<Record<string, unknown> | undefined> {
    const runner = this.dataSource.createQueryRunner('master');
    try {
      const byId = this.dialect.readingById(id);
      const rows = (await runner.query(byId.text, byId.values)) as ReadingRow[];
      if (rows[0]) return { ...rowToView(rows[0]) };
      const failedQ = this.dialect.failedById(id);
      const failed = (await runner.query(failedQ.text, failedQ.values)) as { payload: string; reason: string; failed_at: Date }[];
      if (failed[0]) {
        const { notify: _n, requestId: _r, ...reading } = JSON.parse(failed[0].payload) as Record<string, unknown>;
        return { ...reading, id, status: 'failed', flags: [], reason: failed[0].reason, failedAt: failed[0].failed_at.toISOString() };
      }
      return undefined;
    } finally {
      await runner.release();
    }
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
    const { notify: _n, requestId: _r, ...reading } = pending.reading;
    if (pending.state === 'failed') return { ...reading, status: 'failed', flags: [], reason: pending.failedReason ?? 'job failed' };
    return { ...reading, status: 'queued', flags: [] };
  }
}
