import { Injectable } from '@nestjs/common';
import { newReadingId } from '#libs/readings';
import { ApiError } from '../http/api-error.js';
import type { BatchResult, ReadingAccepted } from '../readings/dto/readings.dto.js';
import { ReadingIntake } from '../readings/reading-intake.js';

/**
 * INTAKE_MODE=noop, for the benchmark only: the HTTP ceiling. Answers 202 without reading the
 * body, validating, counting the rate limit (the throttler skips this mode) or queueing anything.
 */
@Injectable()
export class NoopIntakeService extends ReadingIntake {
  submitOne(): Promise<ReadingAccepted> {
    return Promise.resolve({ id: newReadingId(), status: 'queued' });
  }

  submitBatch(): Promise<BatchResult> {
    return Promise.reject(new ApiError(501, 'not_implemented', 'batches are not served in INTAKE_MODE=noop (a benchmark-only mode)'));
  }
}
