import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { intakeLatency, percentile } from './nginx-log.mjs';
import { plotThroughputLatency, plotTimeSeries } from './plot.mjs';
import { Canvas, crc32 } from './png.mjs';
import { ceilingFailures, errorCount, nextRate, spikeFailures, sustainedFailures } from './rules.mjs';

const okVerify = { ok: true, drained: true, drainMs: 400, lost: [], duplicated: [], valueMismatch: [] };

describe('ceilingFailures', () => {
  it('holds the noop sweep to the same latency, error and schedule limits, with nothing to verify', () => {
    expect(ceilingFailures({ nginxP99Ms: 49, byStatus: { 202: 1000 }, clientOverloaded: 0 })).toEqual([]);
    expect(ceilingFailures({ nginxP99Ms: 51, byStatus: { 202: 990, 503: 10 }, clientOverloaded: 2 })).toEqual(['p99 at nginx 51.0 ms > 50 ms', '10 failed requests', 'generator fell behind (2)']);
  });

  it('is the first part of the sustained rule: a step failing it fails both', () => {
    const step = { nginxP99Ms: 60, byStatus: { 202: 100, 0: 1 }, clientOverloaded: 0 };
    expect(sustainedFailures({ ...step, verify: okVerify }).slice(0, 2)).toEqual(ceilingFailures(step));
  });
});

describe('sustainedFailures', () => {
  it('passes a step within every limit', () => {
    expect(sustainedFailures({ nginxP99Ms: 49, byStatus: { 202: 950, 422: 50 }, clientOverloaded: 0, verify: okVerify })).toEqual([]);
  });

  it('names each broken rule', () => {
    const reasons = sustainedFailures({
      nginxP99Ms: 51,
      byStatus: { 202: 900, 503: 3, 0: 1, 429: 2 },
      clientOverloaded: 4,
      verify: { ...okVerify, ok: false, lost: ['a'], drainMs: 3_500 },
      readings: { rejected: 0, invalidSent: 1, invalidAcknowledged: 1 },
    });
    expect(reasons).toHaveLength(6);
    expect(reasons.join('\n')).toMatch(/p99 at nginx 51.0 ms/);
    expect(reasons.join('\n')).toMatch(/6 failed requests/);
    expect(reasons.join('\n')).toMatch(/lost 1/);
    expect(reasons.join('\n')).toMatch(/drained in 3500 ms/);
    expect(reasons.join('\n')).toMatch(/generator fell behind \(4\)/);
    expect(reasons.join('\n')).toMatch(/1 invalid readings acknowledged/);
  });

  it('fails a step where more readings were refused than were sent invalid', () => {
    const readings = { acknowledged: 2827, rejected: 3106, indeterminate: 0, invalidSent: 299, invalidAcknowledged: 0 };
    const reasons = sustainedFailures({ nginxP99Ms: 45, byStatus: { 202: 2838, 400: 26, 404: 3001, 422: 135 }, clientOverloaded: 0, verify: okVerify, readings });
    expect(reasons).toEqual(['2807 more readings refused than were sent invalid']);
    expect(sustainedFailures({ nginxP99Ms: 45, byStatus: { 202: 5698, 400: 55, 422: 247 }, clientOverloaded: 0, verify: okVerify, readings: { ...readings, rejected: 299 } })).toEqual([]);
  });

  it('fails an unverified step', () => {
    expect(sustainedFailures({ nginxP99Ms: 1, byStatus: {}, clientOverloaded: 0, verify: undefined })).toEqual(['not verified']);
  });

  it('counts no answer, 5xx and 429 as errors but not 4xx answers to invalid payloads', () => {
    expect(errorCount({ 0: 1, 202: 10, 400: 3, 422: 4, 429: 2, 502: 1, 503: 5 })).toBe(9);
  });
});

describe('nextRate', () => {
  it('grows while steps pass, then bisects to the resolution', () => {
    expect(nextRate({ passed: [100], failed: [], factor: 1.5, resolution: 0.1 })).toBe(150);
    expect(nextRate({ passed: [100, 150], failed: [225], factor: 1.5, resolution: 0.1 })).toBe(188);
    expect(nextRate({ passed: [100, 150, 188], failed: [225, 206], factor: 1.5, resolution: 0.1 })).toBeUndefined();
  });

  it('steps down when the first step fails', () => {
    expect(nextRate({ passed: [], failed: [300], factor: 1.5, resolution: 0.1 })).toBe(200);
  });
});

describe('spikeFailures', () => {
  const good = {
    byStatus: { 202: 5_000, 503: 9_000, 422: 50 },
    clientOverloaded: 0,
    acceptedLatencyMs: { count: 5_000, p50: 20, p99: 400, max: 900 },
    refusals: { count: 9_000, withoutRetryAfter: 0, latencyMs: { p50: 2, p99: 40, max: 300 } },
    verify: { ok: true, drained: true, drainMs: 20_000, lost: 0, duplicated: 0, valueMismatch: 0 },
    readings: { invalidAcknowledged: 0 },
  };

  it('passes a spike shed fast with nothing lost', () => {
    expect(spikeFailures(good)).toEqual([]);
  });

  it('names unanswered requests, 502s, slow or bare refusals, slow accepts and a slow drain', () => {
    const reasons = spikeFailures({
      ...good,
      byStatus: { 0: 3, 202: 10, 502: 2, 503: 5 },
      acceptedLatencyMs: { count: 10, p50: 100, p99: 1_000, max: 2_000 },
      refusals: { count: 5, withoutRetryAfter: 1, latencyMs: { p50: 100, p99: 800, max: 900 } },
      verify: { ...good.verify, drainMs: 61_000 },
    });
    expect(reasons).toEqual([
      '3 requests unanswered',
      '2 answers 5xx other than 503',
      '1 refusals without Retry-After',
      'refusals p99 800 ms > 250 ms',
      'accepted p99 1000 ms >= 1000 ms',
      'backlog drained in 61000 ms (limit 60000 ms)',
    ]);
  });

  it('fails a spike where nothing was accepted or the ledger does not hold', () => {
    expect(spikeFailures({ ...good, acceptedLatencyMs: { count: 0 } })).toContain('nothing accepted');
    expect(spikeFailures({ ...good, verify: { ...good.verify, ok: false, lost: 1 } })[0]).toMatch(/^verify failed: lost 1/);
  });
});

describe('nginx log latency', () => {
  it('takes percentiles of request_time for intake POSTs only', () => {
    const entries = [
      ...Array.from({ length: 99 }, () => ({ method: 'POST', uri: '/v1/readings', status: 202, request_time: 0.004 })),
      { method: 'POST', uri: '/v1/readings/batch', status: 503, request_time: 0.2 },
      { method: 'GET', uri: '/metrics', status: 200, request_time: 5 },
    ];
    const l = intakeLatency(entries);
    expect(l.requests).toBe(100);
    expect(l.p50).toBe(4);
    expect(l.p99).toBe(4);
    expect(l.max).toBe(200);
    expect(l.byStatus).toEqual({ 202: 99, 503: 1 });
    expect(l.byStatusMs['202']).toEqual({ requests: 99, p50: 4, p99: 4, max: 4 });
    expect(l.byStatusMs['503'].max).toBe(200);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([], 99)).toBe(0);
  });
});

describe('PNG output', () => {
  function chunks(png) {
    const out = [];
    for (let at = 8; at < png.length; ) {
      const len = png.readUInt32BE(at);
      const type = png.subarray(at + 4, at + 8).toString('ascii');
      const data = png.subarray(at + 8, at + 8 + len);
      out.push({ type, data, crcOk: png.readUInt32BE(at + 8 + len) === crc32(png.subarray(at + 4, at + 8 + len)) });
      at += 12 + len;
    }
    return out;
  }

  it('writes a valid PNG whose pixels are the canvas', () => {
    const c = new Canvas(3, 2);
    c.set(1, 1, [255, 0, 0]);
    const png = c.toPng();
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const parts = chunks(png);
    expect(parts.map((p) => p.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect(parts.every((p) => p.crcOk)).toBe(true);
    const raw = inflateSync(parts[1].data);
    expect(raw.length).toBe(2 * (1 + 3 * 3));
    expect([...raw.subarray(10 + 1 + 3, 10 + 1 + 6)]).toEqual([255, 0, 0]);
  });

  it('plots series and ceilings', () => {
    const png = plotThroughputLatency({
      title: 'T',
      xLabel: 'X',
      yLabel: 'Y',
      series: [{ name: 'a', color: [0, 0, 255], points: [{ x: 100, y: 5 }, { x: 200, y: 80, ok: false }] }],
      vlines: [{ name: 'ceiling', x: 1000, color: [9, 9, 9] }],
      hline: { name: 'rule', y: 50 },
    });
    const pixels = inflateSync(chunks(png).find((p) => p.type === 'IDAT').data);
    const count = ([r, g, b]) => {
      let n = 0;
      for (let i = 0; i + 2 < pixels.length; i++) if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b) n++;
      return n;
    };
    expect(count([0, 0, 255])).toBeGreaterThan(50);
    // The ceiling's dashed line and the rule's line are drawn too.
    expect(count([9, 9, 9])).toBeGreaterThan(50);
    expect(count([200, 0, 0])).toBeGreaterThan(50);
  });

  it('draws each series over time on linear axes from 0', () => {
    const png = plotTimeSeries({ title: 'T', xLabel: 'MINUTES', yLabel: 'MB', series: [{ name: 'a', color: [0, 0, 255], points: [{ x: 0, y: 10 }, { x: 5, y: 12 }, { x: 10, y: 11 }] }, { name: 'b', color: [0, 200, 0], points: [{ x: 0, y: 1 }, { x: 10, y: 2 }] }] });
    const pixels = inflateSync(chunks(png).find((p) => p.type === 'IDAT').data);
    const count = (r, g, b) => {
      let n = 0;
      for (let i = 0; i + 2 < pixels.length; i++) if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b) n++;
      return n;
    };
    expect(count(0, 0, 255)).toBeGreaterThan(100);
    expect(count(0, 200, 0)).toBeGreaterThan(100);
  });
});
