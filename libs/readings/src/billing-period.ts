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

/** The billing period (YYYY-MM) of an instant: its calendar month in the supplier's time zone. */
export function billingPeriod(instant: Date | number | string, timeZone: string): string {
  const date = instant instanceof Date ? instant : new Date(instant);
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
