// Latency at nginx: reads the JSON access log (NGINX_ACCESS_LOG=true, format meter_json) between
// two byte offsets, so each benchmark step gets its own slice.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export function logSize(file) {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export function readSlice(file, from, to) {
  if (to <= from) return [];
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(to - from);
    readSync(fd, buf, 0, buf.length, from);
    return buf
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line)];
        } catch {
          return [];
        }
      });
  } finally {
    closeSync(fd);
  }
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * p50/p99/max of nginx's request_time (ms) for POSTs to the intake routes, their status counts,
 * and the same percentiles per status (a spike is judged on the 202s and the refusals apart).
 */
export function intakeLatency(entries) {
  const posts = entries.filter((e) => e.method === 'POST' && typeof e.uri === 'string' && e.uri.startsWith('/v1/readings'));
  const stats = (list) => {
    const ms = list.map((e) => Number(e.request_time) * 1000).sort((a, b) => a - b);
    return { requests: list.length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms.at(-1) ?? 0 };
  };
  const groups = {};
  for (const e of posts) (groups[e.status] ??= []).push(e);
  const byStatus = Object.fromEntries(Object.entries(groups).map(([status, list]) => [status, list.length]));
  const byStatusMs = Object.fromEntries(Object.entries(groups).map(([status, list]) => [status, stats(list)]));
  return { ...stats(posts), byStatus, byStatusMs };
}
