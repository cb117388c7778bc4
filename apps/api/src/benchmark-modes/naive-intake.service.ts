import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { ReadingStore } from '#libs/database';
import { type ApiMetrics } from '#libs/observability';
import { API_METRICS } from '../api.tokens.js';
import { DatabaseConnector } from '../database/database-connector.js';
import { ApiError } from '../http/api-error.js';
import type { BatchResult, ReadingStoredNow, SubmitContext } from '../readings/dto/readings.dto.js';
import { ReadingIntake } from '../readings/reading-intake.js';
import { SubmissionBuilder } from '../readings/submission-builder.js';

/**
 * INTAKE_MODE=naive, for the benchmark only: the design this service replaces. Each request
 * does the writer's work for its one reading before answering (the previous reading for the
 * flags, then a one-row insert, autocommitted), so the two designs store identical rows and
 * the benchmark compares only where the work happens and how it is batched.
 */
@Injectable()
export class NaiveIntakeService extends ReadingIntake {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
    private readonly submissions: SubmissionBuilder,
    private readonly readingStore: ReadingStore,
    private readonly connector: DatabaseConnector,
  ) {
    super();
  }

  async submitOne(body: unknown, ctx: SubmitContext): Promise<ReadingStoredNow> {
    const { valid, reading } = this.submissions.single(body, ctx);
    this.connector.assertConnected();
    let stored: Awaited<ReturnType<ReadingStore['storeOne']>>;
    try {
      stored = await this.readingStore.storeOne(reading, this.config.intake.spikeKwhPerDay);
    } catch (err) {
      throw new ApiError(503, 'database_unavailable', `the reading was not stored: ${err instanceof Error ? err.message : String(err)}`, [], { 'retry-after': '2' });
    }
    this.metrics.readingsAccepted.inc();
    return { id: reading.id, status: 'stored', ...valid, period: reading.period, flags: stored.row.flags, ...(stored.storedAt ? { storedAt: stored.storedAt.toISOString() } : {}) };
  }

  submitBatch(): Promise<BatchResult> {
    return Promise.reject(new ApiError(501, 'not_implemented', 'batches are not served in INTAKE_MODE=naive (a benchmark-only mode)'));
  }
}
