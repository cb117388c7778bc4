const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Throws a RangeError for a zone the runtime does not know; config validation calls this at boot. */
export function assertTimeZone(timeZone: string): void {
  formatterFor(timeZone);
}

/**
 * Every UTC offset in use is a whole number of quarter hours, so a month boundary in any zone
 * falls on a quarter-hour instant: all instants of one UTC quarter hour share a period.
 * Intl's formatToParts is the slowest step of validating a reading, hence this cache.
 */
const QUARTER_HOUR_MS = 900_000;
const MAX_CACHED = 50_000;
const periodCache = new Map<string, string>();

/** The billing period (YYYY-MM) of an instant: its calendar month in the supplier's time zone. */
export function billingPeriod(instant: Date | number | string, timeZone: string): string {
  const ms = instant instanceof Date ? instant.getTime() : new Date(instant).getTime();
  if (!Number.isFinite(ms)) return formatPeriod(new Date(ms), timeZone);
  const key = `${timeZone}\u0000${Math.floor(ms / QUARTER_HOUR_MS)}`;
  let period = periodCache.get(key);
  if (period === undefined) {
    if (periodCache.size >= MAX_CACHED) periodCache.clear();
    period = formatPeriod(new Date(ms), timeZone);
    periodCache.set(key, period);
  }
  return period;
}

function formatPeriod(date: Date, timeZone: string): string {
  let year = '';
  let month = '';
  for (const part of formatterFor(timeZone).formatToParts(date)) {
    if (part.type === 'year') year = part.value;
    else if (part.type === 'month') month = part.value;
  }
  return `${year}-${month}`;
}

const PERIOD = /^(\d{4})-(0[1-9]|1[0-2])$/;

export function isBillingPeriod(text: string): boolean {
  return PERIOD.test(text);
}

/** First day of the period as a date string, the form stored in the database. */
export function periodStartDate(period: string): string {
  return `${period}-01`;
}
