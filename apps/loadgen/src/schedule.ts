/** How the arrival rate changes over a run (requests per second as a function of time). */
export type LoadMode = 'regular' | 'peak' | 'night' | 'ramp' | 'step';
export const LOAD_MODES: readonly LoadMode[] = ['regular', 'peak', 'night', 'ramp', 'step'];

export interface LoadProfile {
  mode: LoadMode;
  /** The base rate in requests per second. */
  rate: number;
  durationMs: number;
}

const PEAK_PERIOD_MS = 10_000;
const PEAK_SHARE = 0.2;
const PEAK_FACTOR = 3;
const NIGHT_FACTOR = 0.1;
const STEPS = [0.25, 0.5, 0.75, 1];

/**
 * The intended rate at time t (ms from start):
 * regular: constant; peak: 3x bursts for the first 20 % of every 10 s, base rate otherwise
 * (the last days of the window); night: a 10 % trickle; ramp: linear from 0 to the base rate;
 * step: 25 %, 50 %, 75 %, 100 % of the base rate in four equal steps.
 */
export function rateAt(profile: LoadProfile, t: number): number {
  const { mode, rate, durationMs } = profile;
  switch (mode) {
    case 'regular':
      return rate;
    case 'peak':
      return t % PEAK_PERIOD_MS < PEAK_PERIOD_MS * PEAK_SHARE ? rate * PEAK_FACTOR : rate;
    case 'night':
      return rate * NIGHT_FACTOR;
    case 'ramp':
      return durationMs > 0 ? (rate * Math.min(t, durationMs)) / durationMs : rate;
    case 'step':
      return rate * STEPS[Math.min(STEPS.length - 1, Math.floor((t / durationMs) * STEPS.length))]!;
  }
}

/**
 * Intended send times of an open-model run, in ms from the start: the n-th request is due when
 * the integral of the rate reaches n. Sending follows this schedule whatever the server does,
 * and latency is measured from these times, so a stalled server cannot hide its tail
 * (coordinated omission).
 */
export function* arrivals(profile: LoadProfile, stepMs = 1): Generator<number> {
  let cumulative = 0;
  let n = 0;
  for (let t = 0; t < profile.durationMs; t += stepMs) {
    const increment = (rateAt(profile, t) * stepMs) / 1000;
    // Arrivals falling inside this step are placed where the running total crosses each integer.
    // The epsilon keeps float rounding from dropping an arrival due exactly at a step's end.
    while (increment > 0 && cumulative + increment >= n + 1 - 1e-9) {
      yield t + ((n + 1 - cumulative) / increment) * stepMs;
      n++;
    }
    cumulative += increment;
  }
}

/** Total requests a profile sends; used for progress and summaries. */
export function expectedRequests(profile: LoadProfile): number {
  let count = 0;
  for (const _ of arrivals(profile, 5)) count++;
  return count;
}
