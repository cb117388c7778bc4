import { build, type Histogram } from 'hdr-histogram-js';

export type Outcome = 'acknowledged' | 'rejected' | 'indeterminate';

/** One reading as the client knows it. */
export interface LedgerReading {
  /** The id the server answered with (acknowledged readings). */
  id?: string;
  meterId: string;
  readAt: string;
  values: { t1: number; t2?: number; t3?: number };
  outcome: Outcome;
  /** Whether this reading was meant to be valid: invalid ones must all be rejected. */
  valid: boolean;
  /** Idempotency key or submissionId the reading was sent with. */
  key: string;
}

export interface RequestRecord {
  status: number;
  /** Latency from the intended send time (ms). */
  latencyMs: number;
  readings: number;
  /** Whether the answer carried Retry-After (counted for refusals: 429 and 503). */
  retryAfter?: boolean;
}

/** Answers that say "over capacity, come back later": the spike's expected refusals. */
function isRefusal(status: number): boolean {
  return status === 429 || status === 503;
}

const histogram = (): Histogram => build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
const percentileOf = (h: Histogram, p: number): number => (h.totalCount === 0 ? 0 : h.getValueAtPercentile(p) / 1000);

export function outcomeOf(status: number): Outcome {
  if (status === 201 || status === 202) return 'acknowledged';
  if (status >= 400 && status < 500) return 'rejected';
  return 'indeterminate';
}

/** Every request's outcome and every reading's fate as the client saw it, plus the latency histogram. */
export class Ledger {
  readonly readings: LedgerReading[] = [];
  readonly byStatus = new Map<number, number>();
  readonly latency: Histogram = histogram();
  /** Latency of the 2xx answers alone and of the refusals alone: a spike is judged on each. */
  readonly acceptedLatency: Histogram = histogram();
  readonly refusalLatency: Histogram = histogram();
  requests = 0;
  maxLatencyMs = 0;
  refusalsWithoutRetryAfter = 0;

  recordRequest(r: RequestRecord): void {
    this.requests++;
    this.byStatus.set(r.status, (this.byStatus.get(r.status) ?? 0) + 1);
    // Microseconds in the histogram: sub-millisecond answers stay distinguishable.
    const us = Math.max(1, Math.round(r.latencyMs * 1000));
    this.latency.recordValue(us);
    if (r.status >= 200 && r.status < 300) this.acceptedLatency.recordValue(us);
    if (isRefusal(r.status)) {
      this.refusalLatency.recordValue(us);
      if (r.retryAfter === false) this.refusalsWithoutRetryAfter++;
    }
    this.maxLatencyMs = Math.max(this.maxLatencyMs, r.latencyMs);
  }

  recordReading(r: LedgerReading): void {
    this.readings.push(r);
  }

  percentileMs(p: number): number {
    return percentileOf(this.latency, p);
  }

  count(outcome: Outcome): number {
    return this.readings.filter((r) => r.outcome === outcome).length;
  }

  summary() {
    return {
      requests: this.requests,
      byStatus: Object.fromEntries([...this.byStatus.entries()].sort((a, b) => a[0] - b[0])),
      readings: {
        acknowledged: this.count('acknowledged'),
        rejected: this.count('rejected'),
        indeterminate: this.count('indeterminate'),
        invalidSent: this.readings.filter((r) => !r.valid).length,
        invalidAcknowledged: this.readings.filter((r) => !r.valid && r.outcome === 'acknowledged').length,
      },
      latencyMs: {
        p50: this.percentileMs(50),
        p90: this.percentileMs(90),
        p99: this.percentileMs(99),
        p999: this.percentileMs(99.9),
        max: this.maxLatencyMs,
      },
      acceptedLatencyMs: { count: this.acceptedLatency.totalCount, p50: percentileOf(this.acceptedLatency, 50), p99: percentileOf(this.acceptedLatency, 99), max: this.acceptedLatency.maxValue / 1000 },
      refusals: {
        count: this.refusalLatency.totalCount,
        withoutRetryAfter: this.refusalsWithoutRetryAfter,
        latencyMs: { p50: percentileOf(this.refusalLatency, 50), p99: percentileOf(this.refusalLatency, 99), max: this.refusalLatency.maxValue / 1000 },
      },
    };
  }
}
