import { describe, it, expect } from 'vitest';
import { computeFlags, type PreviousReading } from './flags.js';

const LIMIT = 500; // kWh per day

function previous(values: PreviousReading['values'], readAt = '2026-10-20T09:00:00Z'): PreviousReading {
  return { values, readAt };
}

describe('computeFlags', () => {
  it('returns no flags without a previous reading', () => {
    expect(computeFlags({ t1: 0 }, '2026-11-20T09:00:00Z', undefined, LIMIT)).toEqual([]);
    expect(computeFlags({ t1: 1e8 }, '2026-11-20T09:00:00Z', undefined, LIMIT)).toEqual([]);
  });

  it('returns no flags for normal growth', () => {
    expect(computeFlags({ t1: 1300, t2: 700 }, '2026-11-20T09:00:00Z', previous({ t1: 1000, t2: 500 }), LIMIT)).toEqual([]);
  });

  it('returns no flags when nothing changed', () => {
    expect(computeFlags({ t1: 1000 }, '2026-11-20T09:00:00Z', previous({ t1: 1000 }), LIMIT)).toEqual([]);
  });

  describe('regression', () => {
    it('flags a t1 that went down', () => {
      expect(computeFlags({ t1: 999 }, '2026-11-20T09:00:00Z', previous({ t1: 1000 }), LIMIT)).toEqual(['regression']);
    });

    it('flags a t2 that went down while t1 grew', () => {
      expect(computeFlags({ t1: 1100, t2: 400 }, '2026-11-20T09:00:00Z', previous({ t1: 1000, t2: 500 }), LIMIT)).toEqual(['regression']);
    });

    it('flags a t3 that went down by a fraction', () => {
      expect(
        computeFlags({ t1: 1000, t2: 500, t3: 199.999 }, '2026-11-20T09:00:00Z', previous({ t1: 1000, t2: 500, t3: 200 }), LIMIT),
      ).toEqual(['regression']);
    });
  });

  describe('spike', () => {
    it('flags consumption above the daily limit over one day', () => {
      const prev = previous({ t1: 1000 }, '2026-11-19T09:00:00Z');
      expect(computeFlags({ t1: 1501 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['spike']);
    });

    it('does not flag consumption exactly at the daily limit', () => {
      const prev = previous({ t1: 1000 }, '2026-11-19T09:00:00Z');
      expect(computeFlags({ t1: 1500 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]);
    });

    it('divides by the days between the readings', () => {
      const prev = previous({ t1: 1000 }, '2026-11-10T09:00:00Z'); // 10 days earlier
      expect(computeFlags({ t1: 5900 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]); // 490/day
      expect(computeFlags({ t1: 6100 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['spike']); // 510/day
    });

    it('sums the deltas of all zones', () => {
      const prev = previous({ t1: 1000, t2: 1000, t3: 1000 }, '2026-11-19T09:00:00Z');
      // 200 + 200 + 200 = 600 in one day; no single zone is over the limit.
      expect(computeFlags({ t1: 1200, t2: 1200, t3: 1200 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['spike']);
      // 150 * 3 = 450: below.
      expect(computeFlags({ t1: 1150, t2: 1150, t3: 1150 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]);
    });

    it('counts less than a day apart as one day', () => {
      const prev = previous({ t1: 1000 }, '2026-11-20T08:00:00Z'); // one hour earlier
      // 400 kWh in an hour would be 9,600/day if the hour were not rounded up to a day.
      expect(computeFlags({ t1: 1400 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]);
      expect(computeFlags({ t1: 1600 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['spike']);
    });

    it('counts readings at the same instant as one day', () => {
      const prev = previous({ t1: 1000 }, '2026-11-20T09:00:00Z');
      expect(computeFlags({ t1: 1400 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]);
      expect(computeFlags({ t1: 1600 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['spike']);
    });

    it('compares instants, whatever the offsets of the strings', () => {
      // 2026-11-20T09:00+03:00 is 06:00Z: exactly two days after the previous reading.
      const prev = previous({ t1: 1000 }, '2026-11-18T06:00:00Z');
      expect(computeFlags({ t1: 1990 }, '2026-11-20T09:00:00+03:00', prev, LIMIT)).toEqual([]); // 495/day
      expect(computeFlags({ t1: 2010 }, '2026-11-20T09:00:00+03:00', prev, LIMIT)).toEqual(['spike']); // 505/day
    });

    it('uses the given limit', () => {
      const prev = previous({ t1: 1000 }, '2026-11-19T09:00:00Z');
      expect(computeFlags({ t1: 1051 }, '2026-11-20T09:00:00Z', prev, 50)).toEqual(['spike']);
      expect(computeFlags({ t1: 1051 }, '2026-11-20T09:00:00Z', prev, 100)).toEqual([]);
    });
  });

  it('can flag regression and spike together', () => {
    const prev = previous({ t1: 1000, t2: 1000 }, '2026-11-19T09:00:00Z');
    expect(computeFlags({ t1: 900, t2: 2000 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['regression', 'spike']);
  });

  describe('zones missing on either side', () => {
    it('ignores a zone the previous reading does not have', () => {
      const prev = previous({ t1: 1000 }, '2026-11-19T09:00:00Z');
      expect(computeFlags({ t1: 1100, t2: 1e6 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]);
    });

    it('ignores a zone the new reading does not have', () => {
      const prev = previous({ t1: 1000, t2: 1e6, t3: 1e6 }, '2026-11-19T09:00:00Z');
      expect(computeFlags({ t1: 1100 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual([]);
    });

    it('still checks the zones both sides have', () => {
      const prev = previous({ t1: 1000, t2: 1e6 }, '2026-11-19T09:00:00Z');
      expect(computeFlags({ t1: 900, t3: 5 }, '2026-11-20T09:00:00Z', prev, LIMIT)).toEqual(['regression']);
    });
  });
});
