/**
 * How long a request waited between nginx handing it on and this replica starting on it: in the
 * replica's socket and event loop. nginx stamps `X-Request-Start: t=<seconds.milliseconds>`
 * (its `$msec`) on every request it passes, overwriting whatever a client sent.
 *
 * Undefined when there is no stamp (a request not from nginx) or the stamp makes no sense here
 * (more than a second in the future, or older than a minute: clocks of different hosts far
 * apart). Within those bounds the two clocks are trusted: nginx and the replicas must keep time
 * together (NTP) to well within SHED_QUEUE_TIME_MS, or a replica whose clock runs ahead refuses
 * requests that did not wait.
 */
export function queuedForMs(header: string | string[] | undefined, nowMs: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !value.startsWith('t=')) return undefined;
  const stampedMs = Number(value.slice(2)) * 1000;
  if (!Number.isFinite(stampedMs)) return undefined;
  const waited = nowMs - stampedMs;
  return waited >= -1_000 && waited <= 60_000 ? Math.max(0, waited) : undefined;
}
