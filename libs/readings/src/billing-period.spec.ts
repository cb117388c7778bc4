import { describe, it, expect } from 'vitest';
import { assertTimeZone, billingPeriod, isBillingPeriod, periodStartDate } from './billing-period.js';

describe('billingPeriod', () => {
  it('uses the calendar month in Europe/Moscow (UTC+3), not in UTC', () => {
    const instant = '2026-10-31T21:30:00Z'; // 2026-11-01 00:30 in Moscow
    expect(billingPeriod(instant, 'Europe/Moscow')).toBe('2026-11');
    expect(billingPeriod(instant, 'UTC')).toBe('2026-10');
  });

  it('keeps the month when the Moscow wall time is still before midnight', () => {
    expect(billingPeriod('2026-10-31T20:59:59.999Z', 'Europe/Moscow')).toBe('2026-10');
    expect(billingPeriod('2026-10-31T21:00:00Z', 'Europe/Moscow')).toBe('2026-11');
  });

  it('works for another zone: Asia/Vladivostok (UTC+10)', () => {
    expect(billingPeriod('2026-11-30T13:59:59Z', 'Asia/Vladivostok')).toBe('2026-11');
    expect(billingPeriod('2026-11-30T14:00:00Z', 'Asia/Vladivostok')).toBe('2026-12');
    expect(billingPeriod('2026-11-30T14:00:00Z', 'Europe/Moscow')).toBe('2026-11');
  });

  it('works for a zone west of UTC (America/New_York)', () => {
    expect(billingPeriod('2026-12-01T03:00:00Z', 'America/New_York')).toBe('2026-11');
  });

  it('rolls over the year', () => {
    expect(billingPeriod('2026-12-31T21:00:00Z', 'Europe/Moscow')).toBe('2027-01');
    expect(billingPeriod('2026-12-31T21:00:00Z', 'UTC')).toBe('2026-12');
  });

  it('accepts a Date, epoch milliseconds or an ISO string for the same instant', () => {
    const iso = '2026-10-31T21:30:00Z';
    const ms = Date.parse(iso);
    expect(billingPeriod(new Date(ms), 'Europe/Moscow')).toBe('2026-11');
    expect(billingPeriod(ms, 'Europe/Moscow')).toBe('2026-11');
    expect(billingPeriod(iso, 'Europe/Moscow')).toBe('2026-11');
  });

  it('always formats as YYYY-MM with a zero-padded month', () => {
    const period = billingPeriod('2026-03-15T12:00:00Z', 'Europe/Moscow');
    expect(period).toBe('2026-03');
    expect(isBillingPeriod(period)).toBe(true);
  });

  it('gives the same answer on repeated calls (formatter cache)', () => {
    expect(billingPeriod('2026-10-31T21:30:00Z', 'Asia/Vladivostok')).toBe('2026-11');
    expect(billingPeriod('2026-10-31T21:30:00Z', 'Europe/Moscow')).toBe('2026-11');
    expect(billingPeriod('2026-10-31T21:30:00Z', 'UTC')).toBe('2026-10');
    expect(billingPeriod('2026-10-31T21:30:00Z', 'Asia/Vladivostok')).toBe('2026-11');
  });

  it('throws for an unknown time zone', () => {
    expect(() => billingPeriod('2026-10-31T21:30:00Z', 'Mars/Olympus')).toThrow(RangeError);
  });
});

describe('assertTimeZone', () => {
  it.each(['Europe/Moscow', 'Asia/Vladivostok', 'UTC', 'America/New_York'])('accepts %s', (zone) => {
    expect(() => assertTimeZone(zone)).not.toThrow();
  });

  it.each(['Mars/Olympus', 'Nowhere/None', '', 'Europe/Moskva-City'])('throws a RangeError for %j', (zone) => {
    expect(() => assertTimeZone(zone)).toThrow(RangeError);
  });

  it('still throws on a second call for the same unknown zone', () => {
    expect(() => assertTimeZone('Mars/Olympus')).toThrow(RangeError);
    expect(() => assertTimeZone('Mars/Olympus')).toThrow(RangeError);
  });
});

describe('isBillingPeriod', () => {
  it.each(['2026-01', '2026-09', '2026-10', '2026-12', '1999-12'])('accepts %s', (p) => {
    expect(isBillingPeriod(p)).toBe(true);
  });

  it.each(['2026-00', '2026-13', '2026-1', '26-11', '2026-11-01', '2026/11', '', '2026-11\n'])('rejects %j', (p) => {
    expect(isBillingPeriod(p)).toBe(false);
  });
});

describe('periodStartDate', () => {
  it('returns the first day of the period', () => {
    expect(periodStartDate('2026-11')).toBe('2026-11-01');
    expect(periodStartDate('2027-01')).toBe('2027-01-01');
  });
});

describe('billingPeriod cache', () => {
  // The cache assumes month boundaries fall on UTC quarter hours; these zones have odd offsets.
  const zones = ['Europe/Moscow', 'Asia/Kathmandu', 'Australia/Eucla', 'America/St_Johns', 'Pacific/Chatham', 'Asia/Kolkata'];
  const uncached = (ms: number, timeZone: string) => {
    const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit' }).formatToParts(new Date(ms));
    return `${parts.find((p) => p.type === 'year')!.value}-${parts.find((p) => p.type === 'month')!.value}`;
  };

  it.each(zones)('agrees with Intl minute by minute across a month boundary in %s', (zone) => {
    const boundary = Date.UTC(2026, 10, 30, 12); // the boundary in every zone lies within 16 h of this
    for (let ms = boundary - 16 * 3_600_000; ms <= boundary + 16 * 3_600_000; ms += 60_000) {
      expect(billingPeriod(ms + 59_999, zone)).toBe(uncached(ms + 59_999, zone));
      expect(billingPeriod(ms, zone)).toBe(uncached(ms, zone));
    }
  });
});
