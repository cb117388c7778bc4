import { describe, expect, it } from 'vitest';
import { validateReading } from '#libs/readings';
import { submissionWindow, TrafficModel } from './traffic.js';

const model = (over: Partial<ConstructorParameters<typeof TrafficModel>[0]> = {}, now = new Date('2026-11-21T10:00:00Z')) =>
  new TrafficModel({ runId: 'r1', meters: 1_000, twoRateShare: 0.3, threeRateShare: 0.1, invalidShare: 0.05, seed: 42, ...over }, now);

describe('traffic model', () => {
  it('generates readings the service accepts, in the latest past submission window', () => {
    const now = new Date('2026-11-21T10:00:00Z');
    const m = model({}, now);
    const window = submissionWindow(now);
    for (let i = 0; i < 500; i++) {
      const r = m.reading();
      expect(validateReading(r, now.getTime())).toMatchObject({ ok: true });
      const at = Date.parse(r.readAt);
      expect(at).toBeGreaterThanOrEqual(window.from);
      expect(at).toBeLessThanOrEqual(window.to);
    }
  });

  it('uses the previous month when the window of this month has not started', () => {
    const w = submissionWindow(new Date('2026-11-05T10:00:00Z'));
    expect(new Date(w.from).toISOString()).toBe('2026-10-14T21:00:00.000Z');
  });

  it('keeps each meter on its number of zones, in the configured shares', () => {
    const m = model();
    const counts = { 1: 0, 2: 0, 3: 0 };
    for (let n = 0; n < 10_000; n++) counts[m.zonesOf(n)]++;
    expect(counts[3] / 10_000).toBeCloseTo(0.1, 1);
    expect(counts[2] / 10_000).toBeCloseTo(0.3, 1);
    // Every reading a meter gets has exactly its meter's zones.
    for (let i = 0; i < 500; i++) {
      const r = m.reading();
      const n = Number(r.meterId.split('-').pop());
      expect(Object.keys(r.values).length).toBe(m.zonesOf(n));
    }
  });

  it('grows register values over time for a meter (no regressions)', () => {
    const m = model();
    const day = 86_400_000;
    const t = Date.parse('2026-10-20T00:00:00Z');
    expect(m.valueAt(5, 1, t + 30 * day)).toBeGreaterThan(m.valueAt(5, 1, t));
  });

  it('produces invalid payloads the service refuses, in about the configured share', () => {
    const now = new Date('2026-11-21T10:00:00Z');
    const m = model({}, now);
    let invalid = 0;
    for (let i = 0; i < 2_000; i++) {
      if (!m.shouldBeInvalid()) continue;
      invalid++;
      expect(validateReading(m.invalid(m.reading()), now.getTime())).toMatchObject({ ok: false });
    }
    expect(invalid / 2_000).toBeGreaterThan(0.03);
    expect(invalid / 2_000).toBeLessThan(0.07);
  });

  it('is reproducible from its seed', () => {
    expect(model().reading()).toEqual(model().reading());
  });
});
