import { describe, expect, it } from 'vitest';
import { Ledger, outcomeOf } from './ledger.js';

describe('ledger', () => {
  it('classifies answers: 2xx acknowledged, 4xx rejected, 5xx and no answer indeterminate', () => {
    expect(outcomeOf(202)).toBe('acknowledged');
    expect(outcomeOf(201)).toBe('acknowledged');
    expect(outcomeOf(400)).toBe('rejected');
    expect(outcomeOf(429)).toBe('rejected');
    expect(outcomeOf(409)).toBe('rejected');
    expect(outcomeOf(502)).toBe('indeterminate');
    expect(outcomeOf(503)).toBe('indeterminate');
    expect(outcomeOf(0)).toBe('indeterminate');
  });

  it('counts statuses and reports latency percentiles of the latencies it is given', () => {
    const ledger = new Ledger();
    for (let i = 1; i <= 1_000; i++) ledger.recordRequest({ status: i <= 990 ? 202 : 503, latencyMs: i, readings: 1 });
    const s = ledger.summary();
    expect(s.requests).toBe(1_000);
    expect(s.byStatus).toEqual({ 202: 990, 503: 10 });
    expect(s.latencyMs.p50).toBeCloseTo(500, 0);
    expect(s.latencyMs.p99).toBeCloseTo(990, 0);
    expect(s.latencyMs.max).toBe(1_000);
  });

  it('splits latency into accepted answers and refusals, and counts refusals without Retry-After', () => {
    const ledger = new Ledger();
    for (let i = 1; i <= 100; i++) ledger.recordRequest({ status: 202, latencyMs: 100 + i, readings: 1, retryAfter: false });
    ledger.recordRequest({ status: 503, latencyMs: 5, readings: 1, retryAfter: true });
    ledger.recordRequest({ status: 429, latencyMs: 7, readings: 1, retryAfter: false });
    ledger.recordRequest({ status: 502, latencyMs: 3_000, readings: 1, retryAfter: false });
    const s = ledger.summary();
    expect(s.acceptedLatencyMs.count).toBe(100);
    expect(s.acceptedLatencyMs.p99).toBeCloseTo(199, 0);
    expect(s.refusals.count).toBe(2);
    expect(s.refusals.withoutRetryAfter).toBe(1);
    expect(s.refusals.latencyMs.max).toBeCloseTo(7, 1);
  });

  it('keeps sub-millisecond latencies distinguishable', () => {
    const ledger = new Ledger();
    ledger.recordRequest({ status: 202, latencyMs: 0.25, readings: 1 });
    expect(ledger.percentileMs(50)).toBeCloseTo(0.25, 2);
  });

  it('counts readings by outcome and flags acknowledged invalid readings', () => {
    const ledger = new Ledger();
    const base = { meterId: 'm', readAt: '2026-11-20T10:00:00.000Z', values: { t1: 1 }, key: 'k' };
    ledger.recordReading({ ...base, id: 'a', outcome: 'acknowledged', valid: true });
    ledger.recordReading({ ...base, outcome: 'rejected', valid: false });
    ledger.recordReading({ ...base, id: 'b', outcome: 'acknowledged', valid: false });
    ledger.recordReading({ ...base, outcome: 'indeterminate', valid: true });
    expect(ledger.summary().readings).toEqual({ acknowledged: 2, rejected: 1, indeterminate: 1, invalidSent: 2, invalidAcknowledged: 1 });
  });
});
