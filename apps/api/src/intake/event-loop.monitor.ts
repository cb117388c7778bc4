import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Watches this process's event-loop delay. When the process is saturated (CPU-bound), every
 * request it accepts makes all the others slower; answering new intake requests with a fast
 * 503 + Retry-After before their bodies are even parsed keeps latency bounded and lets nginx
 * and clients go elsewhere or come back later.
 */
export class EventLoopMonitor {
  private readonly histogram: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;
  private delayMs = 0;

  constructor(
    private readonly thresholdMs: number,
    sampleEveryMs = 250,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.delayMs = this.histogram.percentile(99) / 1e6;
      this.histogram.reset();
    }, sampleEveryMs);
    this.timer.unref();
  }

  /** p99 event-loop delay of the last sampling interval, in ms. */
  get lastDelayMs(): number {
    return this.delayMs;
  }

  get overloaded(): boolean {
    return this.thresholdMs > 0 && this.delayMs > this.thresholdMs;
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}
