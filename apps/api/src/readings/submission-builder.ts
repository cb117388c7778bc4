import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import type { ApiMetrics } from '#libs/observability';
import { billingPeriod, DEFAULT_RULES, newReadingId, type QueuedReading, readingIdForKey, statusForErrors, type ValidationError, type ValidationRules, type ValidReading, validateReading } from '#libs/readings';
import { API_METRICS } from '../api.tokens.js';
import { ApiError } from '../http/api-error.js';
import type { SubmitContext } from './dto/readings.dto.js';

/** What every intake does with a body before it decides where the reading goes: the rules, the idempotency scope, the 4xx, the queued form. */
@Injectable()
export class SubmissionBuilder {
  readonly rules: ValidationRules;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
  ) {
    this.rules = { ...DEFAULT_RULES, maxAgeDays: config.intake.maxAgeDays };
  }

  /**
   * The idempotency scope: the authenticated client. Two clients' keys never collide, and
   * nobody can claim another client's key (only its holder gets past ApiKeyGuard as that client).
   */
  scopeFor(clientId: string): string {
    return `client:${clientId}`;
  }

  rejectInvalid(errors: ValidationError[], reason: string): never {
    this.metrics.readingsRejected.inc({ reason });
    const status = statusForErrors(errors);
    throw new ApiError(status, status === 400 ? 'bad_request' : 'invalid_reading', 'the reading is not valid', errors.map(({ path, message }) => ({ path, message })));
  }

  /** One submitted body: validated (a 4xx naming every bad field otherwise), given its id (derived from an Idempotency-Key), in its queued form. */
  single(body: unknown, ctx: SubmitContext): { valid: ValidReading; reading: QueuedReading } {
    const now = Date.now();
    const result = validateReading(body, now, this.rules);
    if (!result.ok) this.rejectInvalid(result.errors, 'validation');
    const id = ctx.idempotencyKey ? readingIdForKey(this.scopeFor(ctx.clientId), ctx.idempotencyKey) : newReadingId();
    return { valid: result.reading, reading: this.queued(result.reading, id, ctx, new Date(now).toISOString()) };
  }

  queued(reading: ValidReading, id: string, ctx: SubmitContext, receivedAt: string): QueuedReading {
    const q: QueuedReading = { ...reading, id, period: billingPeriod(reading.readAt, this.config.intake.timeZone), receivedAt };
    if (ctx.requestId) q.requestId = ctx.requestId;
    q.clientId = ctx.clientId;
    return q;
  }
}
