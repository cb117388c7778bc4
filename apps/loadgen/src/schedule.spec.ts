import { describe, expect, it } from 'vitest';
import { arrivals, expectedRequests, rateAt } from './schedule.js';

const times = (mode: 'regular' | 'peak' | 'night' | 'ramp' | 'step', rate: number, durationMs: number) => [...arrivals({ mode, rate, durationMs })];

describe('open-model schedule', () => {
  it('sends exactly rate x duration requests at a constant rate, evenly spaced', () => {
    const t = times('regular', 100, 2_000);
    expect(t).toHaveLength(200);
    const gaps = t.slice(1).map((v, i) => v - t[i]!);
    for (const g of gaps) expect(g).toBeCloseTo(10, 5);
    expect(t[0]).toBeCloseTo(10, 5);
  });

  it('keeps fractional rates exact over time', () => {
    expect(times('regular', 0.5, 10_000)).toHaveLength(5);
    expect(times('regular', 333, 3_000)).toHaveLength(999);
  });

  it('is monotonic: each request is due after the previous one', () => {
    for (const mode of ['regular', 'peak', 'night', 'ramp', 'step'] as const) {
      const t = times(mode, 250, 20_000);
      for (let i = 1; i < t.length; i++) expect(t[i]!).toBeGreaterThanOrEqual(t[i - 1]!);
    }
  });

  it('peak: three times the rate in the first 2 s of every 10 s', () => {
    const profile = { mode: 'peak' as const, rate: 100, durationMs: 20_000 };
    expect(rateAt(profile, 500)).toBe(300);
    expect(rateAt(profile, 5_000)).toBe(100);
    expect(rateAt(profile, 10_500)).toBe(300);
    const t = times('peak', 100, 10_000);
    expect(t.filter((v) => v <= 2_000 + 1e-6)).toHaveLength(600);
    expect(t.filter((v) => v > 2_000 + 1e-6)).toHaveLength(800);
  });

  it('night: a tenth of the rate', () => {
    expect(times('night', 100, 10_000)).toHaveLength(100);
  });

  it('ramp: from zero to the rate, so half the requests of a constant run, more of them late', () => {
    const t = times('ramp', 100, 10_000);
    expect(t.length).toBeGreaterThanOrEqual(499);
    expect(t.length).toBeLessThanOrEqual(500);
    expect(t.filter((v) => v >= 5_000).length).toBeGreaterThan(3 * t.filter((v) => v < 5_000).length - 5);
  });

  it('step: four equal steps at 25, 50, 75 and 100 % of the rate', () => {
    const t = times('step', 100, 8_000);
    // Each step's last request is due exactly at its end.
    const per = [0, 1, 2, 3].map((s) => t.filter((v) => v > s * 2_000 + 1e-6 && v <= (s + 1) * 2_000 + 1e-6).length);
    expect(per).toEqual([50, 100, 150, 200]);
    expect(expectedRequests({ mode: 'step', rate: 100, durationMs: 8_000 })).toBe(500);
  });
});
