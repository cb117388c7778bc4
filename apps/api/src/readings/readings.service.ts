import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import type { ApiMetrics } from '#libs/observability';
import {
  billingPeriod,
  DEFAULT_RULES,
  isPlainObject,
  newReadingId,
  type QueuedReading,
  type ReadingFlag,
  readingFingerprint,
  readingIdForKey,
  statusForErrors,
  type ValidationError,
  type ValidationRules,
  type ValidReading,
  validateReading,
} from '#libs/readings';
import { API_METRICS } from '../api.tokens.js';
import { ApiError } from '../http/api-error.js';
import { BacklogMonitor } from '../intake/backlog.monitor.js';
import { SubmissionCoalescer } from '../intake/coalescer.js';
import { IntakeQueue, type Submission } from '../intake/intake-queue.js';
import { StoredNotices } from '../intake/stored-notices.js';
import type { BatchResult, ReadingAccepted, ReadingStoredNow, SubmitContext } from './dto/readings.dto.js';
import { NaiveIntakeService } from './naive-intake.service.js';

const RETRY_AFTER_REDIS_DOWN = '1';
const RETRY_AFTER_BACKLOG = '5';

@Injectable()
export class ReadingsService {
  private readonly rules: ValidationRules;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
    private readonly intake: IntakeQueue,
    private readonly coalescer: SubmissionCoalescer,
    private readonly backlog: BacklogMonitor,
    private readonly notices: StoredNotices,
    private readonly naive: NaiveIntakeService,
  ) {
    this.rules = { ...DEFAULT_RULES, maxAgeDays: config.intake.maxAgeDays };
  }

  /** The idempotency scope: the API key (hashed, never stored) or one shared public scope. */
  scopeFor(apiKey: string | undefined): string {
    return apiKey ? createHash('sha256').update(apiKey).digest('base64url').slice(0, 16) : 'public';
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

  private rejectInvalid(errors: ValidationError[], reason: string): never {
    this.metrics.readingsRejected.inc({ reason });
    const status = statusForErrors(errors);
    throw new ApiError(status, status === 400 ? 'bad_request' : 'invalid_reading', 'the reading is not valid', errors.map(({ path, message }) => ({ path, message })));
  }

  private queued(reading: ValidReading, id: string, ctx: SubmitContext, receivedAt: string): QueuedReading {
    const q: QueuedReading = { ...reading, id, period: billingPeriod(reading.readAt, this.config.intake.timeZone), receivedAt };
    if (ctx.requestId) q.requestId = ctx.requestId;
    if (ctx.wait) q.notify = true;
    return q;
  }

  private queueFailure(err: unknown): never {
    if (err instanceof ApiError) throw err;
    this.metrics.shed.inc({ reason: 'redis' });
    throw new ApiError(503, 'queue_unavailable', `the reading was not queued: ${err instanceof Error ? err.message : String(err)}`, [], {
      'retry-after': RETRY_AFTER_REDIS_DOWN,
    });
  }

  async submitOne(body: unknown, ctx: SubmitContext): Promise<ReadingAccepted | ReadingStoredNow> {
    const mode = this.config.intake.mode;
    if (mode === 'noop') return { id: newReadingId(), status: 'queued' };
    if (mode === 'queue') this.assertAccepting();
    const now = Date.now();
    const result = validateReading(body, now, this.rules);
    if (!result.ok) this.rejectInvalid(result.errors, 'validation');
    const scope = this.scopeFor(ctx.apiKey);
    const id = ctx.idempotencyKey ? readingIdForKey(scope, ctx.idempotencyKey) : newReadingId();
    const reading = this.queued(result.reading, id, ctx, new Date(now).toISOString());
    if (mode === 'naive') {
      const stored = await this.naive.store(reading);
      this.metrics.readingsAccepted.inc();
      return { id, status: 'stored', ...result.reading, period: reading.period, ...stored };
    }
    const waiter = ctx.wait ? this.notices.waitFor(id, this.config.intake.waitTimeoutMs) : undefined;
    let conflict: boolean;
    try {
      conflict = await this.coalescer.submit({ reading, idempotencyKey: ctx.idempotencyKey, scope, fingerprint: ctx.idempotencyKey ? readingFingerprint(result.reading) : '' });
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
        return { id, status: 'stored', ...result.reading, period: reading.period, flags: (notice.flags ?? []) as ReadingFlag[], ...(notice.storedAt ? { storedAt: notice.storedAt } : {}) };
      }
      if (notice?.status === 'failed') return { id, status: 'failed', reason: notice.reason ?? 'rejected by the database' };
    }
    return { id, status: 'queued' };
  }

  async submitBatch(body: unknown, ctx: SubmitContext): Promise<BatchResult> {
    if (this.config.intake.mode !== 'queue') {
      throw new ApiError(501, 'not_implemented', `batches are not served in INTAKE_MODE=${this.config.intake.mode} (a benchmark-only mode)`);
    }
    this.assertAccepting();
    if (!isPlainObject(body)) this.rejectInvalid([{ path: '$', kind: 'shape', message: 'must be a JSON object with a readings array' }], 'envelope');
    const extra = Object.keys(body).filter((k) => k !== 'readings');
    if (extra.length) this.rejectInvalid(extra.map((k) => ({ path: k, kind: 'shape' as const, message: 'unknown field' })), 'envelope');
    const items = body.readings;
    if (!Array.isArray(items)) this.rejectInvalid([{ path: 'readings', kind: 'shape', message: 'must be an array' }], 'envelope');
    if (items.length === 0) this.rejectInvalid([{ path: 'readings', kind: 'shape', message: 'must contain at least one reading' }], 'envelope');
    if (items.length > this.config.intake.batchLimit) {
      this.metrics.readingsRejected.inc({ reason: 'batch_too_large' }, items.length);
      throw new ApiError(413, 'batch_too_large', `a batch holds at most ${this.config.intake.batchLimit} readings`, [
        { path: 'readings', message: `has ${items.length} items; the limit is ${this.config.intake.batchLimit}` },
      ]);
    }
    const now = Date.now();
    const receivedAt = new Date(now).toISOString();
    const scope = this.scopeFor(ctx.apiKey);
    const result: BatchResult = { accepted: [], rejected: [] };
    const submissions: Submission[] = [];
    const indexes: number[] = [];
    items.forEach((item: unknown, index) => {
      const v = validateReading(item, now, this.rules, { batchItem: true, pathPrefix: `readings[${index}]` });
      if (!v.ok) {
        result.rejected.push({ index, errors: v.errors.map(({ path, message }) => ({ path, message })) });
        return;
      }
      const id = v.submissionId ? readingIdForKey(scope, v.submissionId) : newReadingId();
      submissions.push({ reading: this.queued(v.reading, id, { ...ctx, wait: false }, receivedAt), idempotencyKey: v.submissionId, scope, fingerprint: v.submissionId ? readingFingerprint(v.reading) : '' });
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
