import type { BatchResult, ReadingAccepted, ReadingStoredNow, SubmitContext } from './dto/readings.dto.js';

/**
 * What POST /v1/readings and POST /v1/readings/batch hand a body to. One implementation is
 * chosen at boot from INTAKE_MODE (AppModule.forRoot): the service's own, ReadingsService (queue,
 * the default), or one of the benchmark's baselines in benchmark-modes/. The production path has
 * no mode branches.
 */
export abstract class ReadingIntake {
  abstract submitOne(body: unknown, ctx: SubmitContext): Promise<ReadingAccepted | ReadingStoredNow>;
  abstract submitBatch(body: unknown, ctx: SubmitContext): Promise<BatchResult>;
}
