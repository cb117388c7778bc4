// The benchmark's pass rule for a sustained-rate step, kept pure so it has unit tests.

export const P99_LIMIT_MS = 50;
/** After the load stops, the writers must have caught up within this: the backlog stayed bounded. */
export const DRAIN_LIMIT_MS = 3_000;

/** Client-visible failures: no answer, 5xx, 429. 4xx answers to the planted invalid payloads are expected. */
export function errorCount(byStatus) {
  return Object.entries(byStatus ?? {}).reduce((n, [status, count]) => (Number(status) === 0 || Number(status) >= 500 || Number(status) === 429 ? n + count : n), 0);
}

/**
 * A step sustains its rate when nginx's p99 is within the limit, no request failed, no valid
 * reading was refused, the generator kept its schedule, the database holds exactly what was
 * acknowledged, and the writers drained within DRAIN_LIMIT_MS of the end. Returns the reasons it did not.
 */
export function sustainedFailures({ nginxP99Ms, byStatus, clientOverloaded, verify, readings }) {
  const reasons = ceilingFailures({ nginxP99Ms, byStatus, clientOverloaded });
  const invalidAcknowledged = readings?.invalidAcknowledged ?? 0;
  if (invalidAcknowledged > 0) reasons.push(`${invalidAcknowledged} invalid readings acknowledged`);
  // Only the planted invalid readings may be refused. A 4xx beyond them is the service failing
  // (a 404 from something that is not an API replica, once), not the generator's bad input.
  const validRefused = (readings?.rejected ?? 0) - (readings?.invalidSent ?? 0);
  if (validRefused > 0) reasons.push(`${validRefused} more readings refused than were sent invalid`);
  if (!verify) reasons.push('not verified');
  else {
    if (!verify.ok) reasons.push(`verify failed: lost ${verify.lost.length}, duplicated ${verify.duplicated.length}, mismatched ${verify.valueMismatch.length}`);
    if (!verify.drained || verify.drainMs > DRAIN_LIMIT_MS) reasons.push(`backlog drained in ${verify.drainMs} ms (limit ${DRAIN_LIMIT_MS} ms)`);
  }
  return reasons;
}

/**
 * The HTTP ceiling's rule (INTAKE_MODE=noop: 202 without validating, queueing or storing): the
 * sustained rule's latency, error and schedule parts, so the ceiling and the service are swept by
 * the same generator under the same limits. Nothing to verify, and an invalid payload gets 202.
 */
export function ceilingFailures({ nginxP99Ms, byStatus, clientOverloaded }) {
  const reasons = [];
  if (!(nginxP99Ms <= P99_LIMIT_MS)) reasons.push(`p99 at nginx ${nginxP99Ms.toFixed(1)} ms > ${P99_LIMIT_MS} ms`);
  const errors = errorCount(byStatus);
  if (errors > 0) reasons.push(`${errors} failed requests`);
  if (clientOverloaded > 0) reasons.push(`generator fell behind (${clientOverloaded})`);
  return reasons;
}

/**
 * Next rate of a sweep: grow by `factor` while steps pass; after the first failure, bisect
 * between the best pass and the lowest failure until they are within `resolution` (a share).
 */
export function nextRate({ passed, failed, factor, resolution }) {
  const best = passed.length ? Math.max(...passed) : undefined;
  const lowestFail = failed.length ? Math.min(...failed) : undefined;
  if (lowestFail === undefined) return best === undefined ? undefined : Math.round(best * factor);
  if (best === undefined) return Math.round(lowestFail / factor) >= 1 ? Math.round(lowestFail / factor) : undefined;
  if (lowestFail - best <= best * resolution) return undefined;
  return Math.round((best + lowestFail) / 2);
}

/** Issue 12 item 5's spike limits: refusals answered well under a second, accepted p99 under one. */
export const SPIKE_REFUSAL_P99_LIMIT_MS = 250;
export const SPIKE_ACCEPTED_P99_LIMIT_MS = 1_000;
export const SPIKE_DRAIN_LIMIT_MS = 60_000;

/**
 * A spike is shed well when every request got an answer, no answer was a 502 (or any 5xx but a
 * 503), every refusal (429/503) carried Retry-After and came fast, the accepted ones kept their
 * p99, the generator kept its schedule, nothing acknowledged was lost or doubled, and the backlog
 * drained within a minute. Latencies are the client's (from the intended send time), so time
 * spent queued in a socket backlog counts. `verify` is a step's summary (counts, not lists).
 * Returns the reasons it was not.
 */
export function spikeFailures({ byStatus, clientOverloaded, acceptedLatencyMs, refusals, verify, readings }) {
  const reasons = [];
  const unanswered = Number(byStatus?.['0'] ?? 0);
  if (unanswered > 0) reasons.push(`${unanswered} requests unanswered`);
  const otherErrors = Object.entries(byStatus ?? {}).filter(([s]) => Number(s) >= 500 && Number(s) !== 503).reduce((n, [, c]) => n + c, 0);
  if (otherErrors > 0) reasons.push(`${otherErrors} answers 5xx other than 503`);
  if (clientOverloaded > 0) reasons.push(`generator fell behind (${clientOverloaded})`);
  if ((refusals?.withoutRetryAfter ?? 0) > 0) reasons.push(`${refusals.withoutRetryAfter} refusals without Retry-After`);
  if ((refusals?.count ?? 0) > 0 && !(refusals.latencyMs.p99 <= SPIKE_REFUSAL_P99_LIMIT_MS)) reasons.push(`refusals p99 ${Math.round(refusals.latencyMs.p99)} ms > ${SPIKE_REFUSAL_P99_LIMIT_MS} ms`);
  if (!(acceptedLatencyMs?.count > 0)) reasons.push('nothing accepted');
  else if (!(acceptedLatencyMs.p99 < SPIKE_ACCEPTED_P99_LIMIT_MS)) reasons.push(`accepted p99 ${Math.round(acceptedLatencyMs.p99)} ms >= ${SPIKE_ACCEPTED_P99_LIMIT_MS} ms`);
  if ((readings?.invalidAcknowledged ?? 0) > 0) reasons.push(`${readings.invalidAcknowledged} invalid readings acknowledged`);
  if (!verify) reasons.push('not verified');
  else {
    if (!verify.ok) reasons.push(`verify failed: lost ${verify.lost}, duplicated ${verify.duplicated}, mismatched ${verify.valueMismatch}`);
    if (!verify.drained || verify.drainMs > SPIKE_DRAIN_LIMIT_MS) reasons.push(`backlog drained in ${verify.drainMs} ms (limit ${SPIKE_DRAIN_LIMIT_MS} ms)`);
  }
  return reasons;
}
