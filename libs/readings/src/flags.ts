import type { ReadingFlag, ZoneValues } from './reading.types.js';

export interface PreviousReading {
  values: ZoneValues;
  readAt: string;
}

const ZONES = ['t1', 't2', 't3'] as const;

/**
 * Flags a reading against the meter's latest stored reading of an earlier period.
 * Flags never reject: the raw values are kept and the utility's VEE process decides.
 */
export function computeFlags(
  values: ZoneValues,
  readAt: string,
  previous: PreviousReading | undefined,
  spikeKwhPerDay: number,
): ReadingFlag[] {
  if (!previous) return [];
  const flags: ReadingFlag[] = [];
  let consumption = 0;
  let regression = false;
  for (const zone of ZONES) {
    const now = values[zone];
    const before = previous.values[zone];
    if (now === undefined || before === undefined) continue;
    if (now < before) regression = true;
    else consumption += now - before;
  }
  if (regression) flags.push('regression');
  // Less than a day apart still counts as a day: a day's limit is the smallest meaningful unit.
  const days = Math.max((Date.parse(readAt) - Date.parse(previous.readAt)) / 86_400_000, 1);
  if (consumption / days > spikeKwhPerDay) flags.push('spike');
  return flags;
}
