// Faults of docs/FAULTS.md that need the whole cluster under the generator's load (F10 for its
// full 30 s, F14, F20 for 60 s), and the bad inputs that must be refused through nginx.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../scripts/lib/stack.mjs';
import { withDb } from '../support/db.js';
import { authHeaders } from '../support/auth.js';
import { type Cluster, type LoadResult, ledgerOfLoad, startCluster, steadyLoad } from '../support/cluster.js';
import { postJson, validReading, verifyLedger } from '../support/ledger.js';
import { testRunPrefix } from '../support/readings-factory.js';


const summary = (results: LoadResult[]) => {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = r.status === 0 ? `no answer (${r.error ?? ''})` : String(r.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

/** An outage drill under way: `part` held down for `ms` from 3 s on; settles `tail` ms after its return, with when it was down. */
function outage(part: 'postgres' | 'redis', ms: number, tail = 0): Promise<{ stoppedAt: number; startedAt: number }> {
  return (async () => {
    await sleep(3_000);
    await cluster.drill(part, 'stop');
    const stoppedAt = Date.now();
    await sleep(ms);
    await cluster.drill(part, 'start');
    const startedAt = Date.now();
    await sleep(tail);
    return { stoppedAt, startedAt };
  })();
}

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ api: 2, writers: 2, env: { NGINX_CLIENT_TIMEOUT: '2s' } });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('faults under load', () => {
  it('F10: the PostgreSQL primary stopped for 30 s under load: every submission gets 202, nothing is lost, the backlog drains', async () => {
    const prefix = testRunPrefix('f10');
    const down = outage('postgres', 30_000);
    const results = await steadyLoad(cluster.url, 60, 36_000, (i) => validReading(prefix, i), down);
    const { stoppedAt, startedAt } = await down;
    expect(startedAt - stoppedAt).toBeGreaterThanOrEqual(30_000);
    const during = results.filter((r) => r.sentAt >= stoppedAt && r.sentAt < startedAt);
    expect(during.length).toBeGreaterThan(1_500);
    expect(summary(results)).toEqual({ 202: results.length });
    const drainStart = Date.now();
    const v = await verifyLedger(cluster.table().postgres.primary, ledgerOfLoad(results), prefix, 90_000);
    console.log(`F10: ${results.length} submissions, ${during.length} during the 30 s outage; backlog drained ${((Date.now() - drainStart) / 1000).toFixed(1)} s after the load ended`);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.valueMismatch).toEqual([]);
    expect(v.acknowledged).toBe(results.length);
    // No writer crashed: the same processes as before.
    expect(cluster.table().writers.every((w) => w.restarts === 0)).toBe(true);
  }, 200_000);

  it('F14: SIGTERM to one API replica under load, from outside the supervisor: no failed request; it leaves nginx, drains, restarts and rejoins', async () => {
    const prefix = testRunPrefix('f14');
    const victim = cluster.table().api[0]!;
    let signalledAt = 0;
    const signaller = (async () => {
      await sleep(1_500);
      signalledAt = Date.now();
      process.kill(victim.pid, 'SIGTERM');
    })();
    const results = await steadyLoad(cluster.url, 150, 6_000, (i) => validReading(prefix, i));
    await signaller;
    expect(results.filter((r) => r.status !== 202).map((r) => `${r.status} ${r.error ?? ''}`)).toEqual([]);
    expect(results.some((r) => r.servedBy === victim.name && r.doneAt < signalledAt)).toBe(true);
    const v = await verifyLedger(cluster.table().postgres.primary, ledgerOfLoad(results), prefix, 30_000);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.acknowledged).toBe(results.length);
    await waitFor('the supervisor to restart the replica', async () => {
      const again = (await cluster.status()).api.find((a) => a.name === victim.name);
      return again !== undefined && again.pid !== victim.pid && again.health === 'ready';
    }, 30_000, 250);
    const probe = testRunPrefix('f14-probe');
    let n = 0;
    await waitFor('the restarted replica to get requests from nginx again', async () => (await postJson(`${cluster.url}/v1/readings`, validReading(probe, n++))).headers.get('x-served-by') === victim.name, 15_000, 50);
    const log = readFileSync(cluster.logFile, 'utf8');
    expect(log).toContain(`${victim.name} is stopping (SIGTERM from outside the supervisor): out of nginx before it closes`);
    expect(log).toContain(`${victim.name} restarted and back in nginx`);
  });

  it('F20: Redis down for 60 s under load: a fast 503 with Retry-After throughout, 202 again within seconds of its return, nothing acknowledged lost', async () => {
    const prefix = testRunPrefix('f20');
    const down = outage('redis', 60_000, 10_000);
    const results = await steadyLoad(cluster.url, 40, 75_000, (i) => validReading(prefix, i), down);
    const { stoppedAt, startedAt } = await down;
    // Only 202 and 503: no 502, no timeout, no reset.
    expect(Object.keys(summary(results)).sort()).toEqual(['202', '503']);
    const refused = results.filter((r) => r.status === 503);
    // Every submission sent while Redis was down was refused, fast.
    const during = results.filter((r) => r.sentAt > stoppedAt + 500 && r.doneAt < startedAt);
    expect(during.length).toBeGreaterThan(2_000);
    expect(during.every((r) => r.status === 503)).toBe(true);
    const slowest = Math.max(...refused.map((r) => r.doneAt - r.sentAt));
    expect(slowest).toBeLessThan(1_500);
    // Back within seconds of Redis's return: everything sent 5 s after it was accepted.
    const after = results.filter((r) => r.sentAt > startedAt + 5_000);
    expect(after.length).toBeGreaterThan(100);
    expect(after.every((r) => r.status === 202)).toBe(true);
    console.log(`F20: ${refused.length} refused with 503 (slowest ${slowest} ms), ${results.length - refused.length} accepted`);
    // A job a writer was reading when Redis stopped is taken over once idle for the lock (30 s) at the next reclaim (30 s).
    const v = await verifyLedger(cluster.table().postgres.primary, ledgerOfLoad(results), prefix, 90_000);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.rejectedButStored).toEqual([]);
  }, 250_000);
});

describe('bad input through nginx', () => {
  const now = () => new Date(Date.now() - 60_000).toISOString();

  it('A2: a batch of 100,000 items: 413 from nginx (over the body limit), nothing stored', async () => {
    const prefix = testRunPrefix('a2');
    const readings = Array.from({ length: 100_000 }, (_, i) => ({ meterId: `${prefix}-${i}`, readAt: now(), values: { t1: i } }));
    const res = await postJson(`${cluster.url}/v1/readings/batch`, { readings });
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe('payload_too_large');
    expect(res.headers.get('x-served-by')).toBeNull();
    // Just under the body limit, 1,001 small items reach the API, which refuses the whole batch.
    const small = Array.from({ length: 1_001 }, (_, i) => ({ meterId: `${prefix}-s${i}`, readAt: now(), values: { t1: i } }));
    const over = await postJson(`${cluster.url}/v1/readings/batch`, { readings: small });
    expect(over.status).toBe(413);
    expect(over.json.error.code).toBe('batch_too_large');
    expect(over.json.error.details[0].path).toBe('readings');
    await sleep(1_000);
    const stored = await withDb(cluster.table().postgres.primary, async (c) => (await c.query('SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1', [`${prefix}-%`])).rows[0].n as number);
    expect(stored).toBe(0);
  });

  it('A3: invalid UTF-8 in the body: 400 naming it, nothing decoded into U+FFFD and accepted', async () => {
    const prefix = testRunPrefix('a3');
    const body = Buffer.concat([Buffer.from(`{"meterId":"${prefix}-1","readAt":"${now()}","values":{"t1":1},"source":"web`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const res = await fetch(`${cluster.url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders() }, body });
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; details: { path: string }[] } };
    expect(json.error.code).toBe('invalid_utf8');
    expect(json.error.details[0]!.path).toBe('$');
  });

  it('A4: a gzip bomb (Content-Encoding: gzip, 100 MB of zeros in 100 KB): 415 at once, never decompressed; the replica stays alive', async () => {
    const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(200 * 1024);
    const t0 = performance.now();
    const res = await fetch(`${cluster.url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...authHeaders() }, body: bomb });
    expect(res.status).toBe(415);
    const json = (await res.json()) as { error: { code: string; details: { path: string }[] } };
    expect(json.error.code).toBe('unsupported_media_type');
    expect(json.error.details[0]!.path).toBe('Content-Encoding');
    expect(performance.now() - t0).toBeLessThan(2_000);
    const pids = cluster.table().api.map((a) => a.pid);
    expect((await postJson(`${cluster.url}/v1/readings`, validReading(testRunPrefix('a4'), 0))).status).toBe(202);
    expect(cluster.table().api.map((a) => a.pid)).toEqual(pids);
  });

  it('A11: a slow body is cut by nginx (client_body_timeout) while other clients are unaffected; the replicas never see it', async () => {
    const { port } = new URL(cluster.url);
    const socket = tlsConnect({ port: Number(port), host: '127.0.0.1' });
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    socket.write(`POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\nAuthorization: ${authHeaders().authorization}\r\n\r\n{"meterId":`);
    const opened = Date.now();
    const prefix = testRunPrefix('a11');
    for (let i = 0; i < 10; i++) expect((await postJson(`${cluster.url}/v1/readings`, validReading(prefix, i))).status).toBe(202);
    const closedAt = await Promise.race([closed, sleep(10_000).then(() => 0)]);
    socket.destroy();
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt - opened).toBeLessThan(5_000);
    // nginx answers 408 itself or closes without a word; either way no replica answered.
    expect(answer).not.toMatch(/x-served-by/i);
  });

  it('A16: 1,000 headers: 431 from nginx, which never passes them on', async () => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...authHeaders() };
    for (let i = 0; i < 1_000; i++) headers[`x-h${i}`] = 'v';
    const res = await fetch(`${cluster.url}/v1/readings`, { method: 'POST', headers, body: JSON.stringify(validReading(testRunPrefix('a16'), 0)) });
    expect(res.status).toBe(431);
    expect(res.headers.get('x-served-by')).toBeNull();
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('headers_too_large');
    // A normal request is not affected.
    expect((await postJson(`${cluster.url}/v1/readings`, validReading(testRunPrefix('a16'), 1))).status).toBe(202);
  });
});
