import { billingPeriod } from '#libs/readings';

/** Small, fast, seedable PRNG (mulberry32): the same seed gives the same traffic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

export interface TrafficOptions {
  runId: string;
  meters: number;
  twoRateShare: number;
  threeRateShare: number;
  invalidShare: number;
  seed: number;
}

export interface MeterReading {
  meterId: string;
  accountId: string;
  readAt: string;
  values: { t1: number; t2?: number; t3?: number };
  source: string;
}

const SOURCES = ['web', 'app', 'sms', 'ivr', 'operator'];
/** Registers start counting here (2024-01-01), so values stay in a realistic range. */
const VALUE_EPOCH = Date.UTC(2024, 0, 1);

/**
 * The latest submission window (15th-26th) that lies in the past, in the supplier's zone: real
 * readings cluster there. Falls back to "yesterday" where the window is too far back.
 */
export function submissionWindow(now: Date, timeZone = 'Europe/Moscow'): { from: number; to: number } {
  const period = billingPeriod(now, timeZone);
  const [y, m] = period.split('-').map(Number) as [number, number];
  const start = (year: number, month: number) => Date.UTC(year, month - 1, 15, 0, 0, 0) - 3 * 3_600_000;
  let from = start(y, m);
  if (from > now.getTime() - 3_600_000) from = start(m === 1 ? y - 1 : y, m === 1 ? 12 : m - 1);
  const to = Math.min(from + 11 * 86_400_000, now.getTime() - 60_000);
  return { from, to };
}

/**
 * Generates what a population of meters submits: ids spread over the population, a share of
 * two- and three-rate meters, register values that grow month over month per meter (so they
 * never regress), read times clustered in the submission window, and a share of invalid
 * payloads of the kinds the service must refuse.
 */
export class TrafficModel {
  private readonly random: () => number;
  private readonly window: { from: number; to: number };

  constructor(private readonly o: TrafficOptions, now = new Date()) {
    this.random = rng(o.seed);
    this.window = submissionWindow(now);
  }

  meterId(n: number): string {
    return `lg-${this.o.runId}-${n}`;
  }

  /** Zones of meter n: fixed by the meter, so every submission of a meter has the same shape. */
  zonesOf(n: number): 1 | 2 | 3 {
    const u = (hash(`zones:${n}`) % 10_000) / 10_000;
    if (u < this.o.threeRateShare) return 3;
    if (u < this.o.threeRateShare + this.o.twoRateShare) return 2;
    return 1;
  }

  /** A cumulative register: a per-meter start plus growth proportional to time, so it only ever increases. */
  valueAt(n: number, zone: number, at: number): number {
    const start = hash(`start:${n}:${zone}`) % 90_000;
    const perDay = 2 + (hash(`use:${n}:${zone}`) % 20);
    return Math.round((start + (perDay * (at - VALUE_EPOCH)) / 86_400_000) * 1000) / 1000;
  }

  reading(): MeterReading {
    const n = Math.floor(this.random() * this.o.meters);
    const at = this.window.from + Math.floor(this.random() * Math.max(this.window.to - this.window.from, 1));
    const zones = this.zonesOf(n);
    const values: MeterReading['values'] = { t1: this.valueAt(n, 1, at) };
    if (zones >= 2) values.t2 = this.valueAt(n, 2, at);
    if (zones === 3) values.t3 = this.valueAt(n, 3, at);
    return {
      meterId: this.meterId(n),
      accountId: String(100_000_000 + (n % 900_000_000)),
      readAt: new Date(at).toISOString(),
      values,
      source: SOURCES[n % SOURCES.length]!,
    };
  }

  /** True for the configured share of requests that carry an invalid payload. */
  shouldBeInvalid(): boolean {
    return this.random() < this.o.invalidShare;
  }

  /** One of the invalid payload kinds, keeping the meterId so "rejected but stored" can be checked. */
  invalid(reading: MeterReading): Record<string, unknown> {
    const kind = Math.floor(this.random() * 6);
    switch (kind) {
      case 0:
        return { ...reading, values: { t1: -5 } };
      case 1:
        return { ...reading, values: { t1: 1.23456 } };
      case 2:
        return { ...reading, readAt: reading.readAt.replace('Z', '') };
      case 3:
        return { ...reading, tariff: 'T1' };
      case 4:
        return { ...reading, values: { t1: 1, t3: 2 } };
      default:
        return { ...reading, readAt: '2099-01-01T00:00:00Z' };
    }
  }

  chance(share: number): boolean {
    return this.random() < share;
  }
}
