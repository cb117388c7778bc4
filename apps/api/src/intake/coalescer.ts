import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { IntakeQueue, type Submission } from './intake-queue.js';

interface Waiting {
  submission: Submission;
  bytes: number;
  resolve: (conflict: boolean) => void;
  reject: (err: unknown) => void;
}

/** A full group may go out beside the one in flight, up to this many sends at once. */
const MAX_SENDS_IN_FLIGHT = 4;

/**
 * Group commit for single submissions: one queue job per group, so Redis work is
 * paid once per group rather than once per reading. No timer: when nothing of this replica's is
 * in flight, what has arrived goes out at once (at the end of the current event-loop turn, so
 * requests parsed in the same turn share a job); while a send is in flight, arrivals gather and
 * go out together when it returns. At light load a request waits for nobody; under load the
 * groups grow by themselves, bounded by count and bytes. Every caller still gets its own answer,
 * and only after its group's job is durably queued.
 */
@Injectable()
export class SubmissionCoalescer {
  private waiting: Waiting[] = [];
  private waitingBytes = 0;
  private inFlight = 0;
  private scheduled = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly intake: IntakeQueue,
  ) {}

  /** Resolves to true when the idempotency key was already used with a different payload. */
  submit(submission: Submission): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const bytes = approximateBytes(submission);
      this.waiting.push({ submission, bytes, resolve, reject });
      this.waitingBytes += bytes;
      if (this.inFlight === 0 || this.full()) this.schedule();
    });
  }

  private full(): boolean {
    const { coalesceMaxReadings, coalesceMaxBytes } = this.config.intake;
    return this.waiting.length >= coalesceMaxReadings || this.waitingBytes >= coalesceMaxBytes;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  /**
   * Sends what waits: when nothing is in flight, or right after a send returned (`returned`),
   * one group; then every full group, beside those in flight, up to MAX_SENDS_IN_FLIGHT.
   */
  private send(returned = false): void {
    let next = this.inFlight === 0 || returned;
    while (this.waiting.length > 0 && this.inFlight < MAX_SENDS_IN_FLIGHT && (next || this.full())) {
      next = false;
      const group = this.take();
      this.inFlight++;
      void this.intake
        .enqueue(group.map((w) => w.submission))
        .then(
          (conflicts) => group.forEach((w, i) => w.resolve(conflicts.has(i))),
          (err: unknown) => group.forEach((w) => w.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          // What gathered meanwhile goes out now, as one group.
          if (this.waiting.length > 0) this.send(true);
        });
    }
  }

  /** The oldest waiting submissions, up to the count and byte bounds (at least one). */
  private take(): Waiting[] {
    const { coalesceMaxReadings, coalesceMaxBytes } = this.config.intake;
    let n = 0;
    let bytes = 0;
    while (n < this.waiting.length && n < coalesceMaxReadings && (n === 0 || bytes + this.waiting[n]!.bytes <= coalesceMaxBytes)) {
      bytes += this.waiting[n]!.bytes;
      n++;
    }
    const group = this.waiting.splice(0, n);
    this.waitingBytes -= bytes;
    return group;
  }
}

/**
 * About what a submission adds to its job and script call in Redis: the reading's JSON, its
 * two keys and its fingerprint. An estimate from the string lengths, so no JSON is built twice.
 */
function approximateBytes(s: Submission): number {
  const r = s.reading;
  return 200 + r.id.length * 2 + r.meterId.length + (r.accountId?.length ?? 0) + (r.requestId?.length ?? 0) + (r.clientId?.length ?? 0) + s.fingerprint.length;
}
