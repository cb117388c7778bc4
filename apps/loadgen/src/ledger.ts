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
}

export function outcomeOf(status: number): Outcome {
  if (status === 201 || status === 202) return 'acknowledged';
  if (status >= 400 && status < 500) return 'rejected';
  return 'indeterminate';
}

/** Every request's outcome and every reading's fate as the client saw it, plus the latency histogram. */
export class Ledger {
  readonly readings: LedgerReading[] = [];
  readonly byStatus = new Map<number, number>();
  readonly latency: Histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  requests = 0;
  maxLatencyMs = 0;

  recordRequest(r: RequestRecord): void {
    this.requests++;
    this.byStatus.set(r.status, (this.byStatus.get(r.status) ?? 0) + 1);
    // Microseconds in the histogram: sub-millisecond answers stay distinguishable.
    this.latency.recordValue(Math.max(1, Math.round(r.latencyMs * 1000)));
    this.maxLatencyMs = Math.max(this.maxLatencyMs, r.latencyMs);
  }

  recordReading(r: LedgerReading): void {
    this.readings.push(r);
  }

  percentileMs(p: number): number {
    return this.latency.totalCount === 0 ? 0 : this.latency.getValueAtPercentile(p) / 1000;
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
    };
  }
}
