import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import type { ApiMetrics } from '#libs/observability';
import { isPlainObject, newReadingId, type ReadingFlag, readingFingerprint, readingIdForKey, validateReading } from '#libs/readings';
import { API_METRICS } from '../api.tokens.js';
import { ApiError } from '../http/api-error.js';
import { BacklogMonitor } from '../intake/backlog.monitor.js';
import { SubmissionCoalescer } from '../intake/coalescer.js';
import { IntakeQueue, type Submission } from '../intake/intake-queue.js';
import { StoredNotices } from '../intake/stored-notices.js';
import type { BatchResult, ReadingAccepted, ReadingStoredNow, SubmitContext } from './dto/readings.dto.js';
import { ReadingIntake } from './reading-intake.js';
import { SubmissionBuilder } from './submission-builder.js';

const RETRY_AFTER_REDIS_DOWN = '1';
const RETRY_AFTER_BACKLOG = '5';

/**
 * The service's intake (INTAKE_MODE=queue, the default): validate, claim the idempotency key,
 * queue through the coalescer, answer 202 once Redis holds the job.
 */
@Injectable()
export class ReadingsService extends ReadingIntake {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
    private readonly submissions: SubmissionBuilder,
    private readonly intake: IntakeQueue,
    private readonly coalescer: SubmissionCoalescer,
    private readonly backlog: BacklogMonitor,
    private readonly notices: StoredNotices,
  ) {
    super();
  }

  /** Refuses before any work when the queue cannot take readings now. */
  assertAccepting(): void {
    if (!this.intake.redisReady) {
      this.metrics.shed.inc({ reason: 'redis' });
      throw new ApiError(503, 'queue_unavailable', 'the reading queue is unreachable; retry shortly', [], { 'retry-after': RETRY_AFTER_REDIS_DOWN });
    }
    if (this.backlog.overHighWater) {
      this.metrics.shed.inc({ reason: 'backlog' });
      throw new ApiError(503, 'overloaded', 'the intake backlog is above its high-water mark; retry later', [], { 'retry-after': RETRY_AFTER_BACKLOG });
    }
  }

  private queueFailure(err: unknown): never {
    if (err instanceof ApiError) throw err;
    this.metrics.shed.inc({ reason: 'redis' });
    throw new ApiError(503, 'queue_unavailable', `the reading was not queued: ${err instanceof Error ? err.message : String(err)}`, [], {
      'retry-after': RETRY_AFTER_REDIS_DOWN,
    });
  }

  async submitOne(body: unknown, ctx: SubmitContext): Promise<ReadingAccepted | ReadingStoredNow> {
    this.assertAccepting();
    const { valid, reading } = this.submissions.single(body, ctx);
    const id = reading.id;
    const waiter = ctx.wait ? this.notices.waitFor(id, this.config.intake.waitTimeoutMs) : undefined;
    let conflict: boolean;
    try {
      conflict = await this.coalescer.submit({ reading, ...(ctx.wait ? { notify: true } : {}), fingerprint: ctx.idempotencyKey ? readingFingerprint(valid) : '' });
    } catch (err) {
      waiter?.cancel();
      this.queueFailure(err);
    }
    if (conflict) {
      waiter?.cancel();
      this.metrics.readingsRejected.inc({ reason: 'idempotency_conflict' });
      throw new ApiError(409, 'idempotency_conflict', 'this Idempotency-Key was already used with a different reading', [
        { path: 'Idempotency-Key', message: 'already used with a different payload' },
      ]);
    }
    this.metrics.readingsAccepted.inc();
    if (waiter) {
      const notice = await waiter.promise;
      if (notice?.status === 'stored') {
        return { id, status: 'stored', ...valid, period: reading.period, flags: (notice.flags ?? []) as ReadingFlag[], ...(notice.storedAt ? { storedAt: notice.storedAt } : {}) };
      }
      if (notice?.status === 'failed') return { id, status: 'failed', reason: notice.reason ?? 'rejected by the database' };
    }
    return { id, status: 'queued' };
  }

  async submitBatch(body: unknown, ctx: SubmitContext): Promise<BatchResult> {
    this.assertAccepting();
    if (!isPlainObject(body)) this.submissions.rejectInvalid([{ path: '$', kind: 'shape', message: 'must be a JSON object with a readings array' }], 'envelope');
    const extra = Object.keys(body).filter((k) => k !== 'readings');
    if (extra.length) this.submissions.rejectInvalid(extra.map((k) => ({ path: k, kind: 'shape' as const, message: 'unknown field' })), 'envelope');
    const items = body.readings;
    if (!Array.isArray(items)) this.submissions.rejectInvalid([{ path: 'readings', kind: 'shape', message: 'must be an array' }], 'envelope');
    if (items.length === 0) this.submissions.rejectInvalid([{ path: 'readings', kind: 'shape', message: 'must contain at least one reading' }], 'envelope');
    if (items.length > this.config.intake.batchLimit) {
      this.metrics.readingsRejected.inc({ reason: 'batch_too_large' }, items.length);
      throw new ApiError(413, 'batch_too_large', `a batch holds at most ${this.config.intake.batchLimit} readings`, [
        { path: 'readings', message: `has ${items.length} items; the limit is ${this.config.intake.batchLimit}` },
      ]);
    }
    const now = Date.now();
    const receivedAt = new Date(now).toISOString();
    const scope = this.submissions.scopeFor(ctx.clientId);
    const result: BatchResult = { accepted: [], rejected: [] };
    const submissions: Submission[] = [];
    const indexes: number[] = [];
    items.forEach((item: unknown, index) => {
      const v = validateReading(item, now, this.submissions.rules, { batchItem: true, pathPrefix: `readings[${index}]` });
      if (!v.ok) {
        result.rejected.push({ index, errors: v.errors.map(({ path, message }) => ({ path, message })) });
        return;
      }
      const id = v.submissionId ? readingIdForKey(scope, v.submissionId) : newReadingId();
      submissions.push({ reading: this.submissions.queued(v.reading, id, { ...ctx, wait: false }, receivedAt), fingerprint: v.submissionId ? readingFingerprint(v.reading) : '' });
      indexes.push(index);
    });
    if (submissions.length > 0) {
      let conflicts: Set<number>;
      try {
        conflicts = await this.intake.enqueue(submissions);
      } catch (err) {
        this.queueFailure(err);
      }
      submissions.forEach((s, i) => {
        const index = indexes[i]!;
        if (conflicts.has(i)) {
          result.rejected.push({ index, errors: [{ path: `readings[${index}].submissionId`, message: 'already used with a different payload' }] });
        } else {
          result.accepted.push({ index, id: s.reading.id });
        }
      });
      result.rejected.sort((a, b) => a.index - b.index);
    }
    this.metrics.readingsAccepted.inc(result.accepted.length);
    if (result.rejected.length) this.metrics.readingsRejected.inc({ reason: 'validation' }, result.rejected.length);
    return result;
  }
}
