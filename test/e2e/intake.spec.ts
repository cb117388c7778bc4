import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../../scripts/lib/stack.mjs';
import { withDb } from '../support/db.js';
import {
  getJson,
  newKey,
  postJson,
  type SentReading,
  validReading,
  verifyLedger,
} from '../support/ledger.js';
import { expectMixedIntakeStoredOnce, sendMixedIntake } from '../support/intake-scenario.js';
import { type AppProcess, startApi, startWriter } from '../support/processes.js';
import { testRunPrefix } from '../support/readings-factory.js';
import { stackControl } from '../support/stack-control.js';

const stack = inject('stack');

/** A POST with a chunked body of one chunk of `size` bytes, left open, over a raw socket; resolves with the answer. */
function rawChunkedPost(url: string, size: number): Promise<{ status: number; body: string; json: any }> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let raw = '';
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 10 s')), 10_000);
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      raw += c;
      const split = raw.indexOf('\r\n\r\n');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(raw.slice(0, split))?.[1] ?? NaN);
      if (split < 0 || raw.length < split + 4 + length) return;
      clearTimeout(timer);
      socket.destroy();
      const body = raw.slice(split + 4, split + 4 + length);
      resolve({ status: Number(raw.slice(9, 12)), body, json: JSON.parse(body) });
    });
    socket.on('error', reject);
    socket.write(`POST ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${size.toString(16)}\r\n`);
    socket.write('x'.repeat(size));
  });
}

/** A POST that announces `contentLength` bytes of JSON, sends none of them, and resolves with the answer. */
function headersOnlyPost(url: string, contentLength: number): Promise<{ status: number; contentType: string; body: string; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(contentLength) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body, json: JSON.parse(body) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.flushHeaders();
  });
}
const logDir = mkdtempSync(join(tmpdir(), 'mi-e2e-intake-'));
let api: AppProcess;
let writer: AppProcess;

const env = {
  DATABASE_URL: stack.databaseUrl,
  DATABASE_REPLICA_URL: stack.replicaUrl,
  REDIS_URL: stack.redisUrl,
  REDIS_PREFIX: `e2e-${Date.now()}`,
  RATE_LIMIT: '1000000',
  LOG_LEVEL: 'info',
};

beforeAll(async () => {
  [writer, api] = await Promise.all([startWriter(env, logDir), startApi(env, logDir)]);
});

afterAll(async () => {
  await api?.stop();
  await writer?.stop();
});

describe('intake end to end: API and writer as separate processes', () => {
  it('stores every acknowledged reading exactly once among 2,000 (singles and batches, 5% invalid, 1% resent)', async () => {
    const prefix = testRunPrefix('e2e');
    const total = 2_000;
    const ledger = await sendMixedIntake(api.url, prefix, total);
    await expectMixedIntakeStoredOnce(stack.databaseUrl, ledger, prefix, total);

    // Negative control: the checker must see a loss when there is one.
    const victim = ledger.acknowledged()[0]!.id!;
    await withDb(stack.databaseUrl, (c) => c.query('DELETE FROM readings WHERE id = $1', [victim]));
    const afterDelete = await verifyLedger(stack.databaseUrl, ledger, prefix, 0);
    expect(afterDelete.lost).toEqual([victim]);
    await withDb(stack.databaseUrl, (c) =>
      c.query(`INSERT INTO readings (id, meter_id, period, read_at, t1, received_at) VALUES ($1, $2, date '2026-01-01', now(), 1, now())`, [newKey(), `${prefix}-stranger`]),
    );
    expect((await verifyLedger(stack.databaseUrl, ledger, prefix, 0)).unexpectedRows).toBe(1);
    const lostOne = ledger.acknowledged().find((e) => e.id === victim)!;
    // Put the reading back through the API with its key: the resend converges on the same id.
    const resent = await postJson(`${api.url}/v1/readings?wait=true`, lostOne.body, { 'idempotency-key': lostOne.key! });
    expect(resent.status).toBe(201);
    expect(resent.json.id).toBe(victim);

    // Status and meter history agree with what was stored; history comes from the replica.
    const sample = ledger.acknowledged().filter((_, i) => i % 50 === 0);
    await waitFor('replica to catch up', async () => {
      const last = sample[sample.length - 1]!;
      const h = await getJson(`${api.url}/v1/meters/${(last.body as SentReading).meterId}/readings`);
      return h.json.periods.length === 1;
    });
    for (const entry of sample) {
      const sent = entry.body as SentReading;
      const status = await getJson(`${api.url}/v1/readings/${entry.id}`);
      expect(status.status).toBe(200);
      expect(status.json).toMatchObject({ id: entry.id, status: 'stored', meterId: sent.meterId, values: sent.values, readAt: new Date(sent.readAt).toISOString() });
      const history = await getJson(`${api.url}/v1/meters/${sent.meterId}/readings?history=true`);
      expect(history.status).toBe(200);
      expect(history.json.readFrom).toBe('replica');
      expect(history.headers.get('x-read-from')).toBe('replica');
      expect(history.json.periods).toHaveLength(1);
      expect(history.json.periods[0].effective).toEqual({ ...status.json });
      expect(history.json.periods[0].submissions).toHaveLength(1);
    }
  });

  it('serves meter history from the replica: a paused replica hides a new reading, consistency=strong sees it', async () => {
    const { replica } = stackControl();
    const meterId = testRunPrefix('replica');
    const first = await postJson(`${api.url}/v1/readings?wait=true`, { meterId, readAt: new Date(Date.now() - 120_000).toISOString(), values: { t1: 10 } });
    expect(first.status).toBe(201);
    await waitFor('replica to have the first reading', async () => (await getJson(`${api.url}/v1/meters/${meterId}/readings`)).json.periods.length === 1);
    await replica.psql('SELECT pg_wal_replay_pause()');
    try {
      const second = await postJson(`${api.url}/v1/readings?wait=true`, { meterId, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 20 } });
      expect(second.status).toBe(201);
      const eventual = await getJson(`${api.url}/v1/meters/${meterId}/readings?history=true`);
      expect(eventual.json.readFrom).toBe('replica');
      expect(eventual.json.periods[0].submissions.map((s: { id: string }) => s.id)).toEqual([first.json.id]);
      const strong = await getJson(`${api.url}/v1/meters/${meterId}/readings?history=true&consistency=strong`);
      expect(strong.json.readFrom).toBe('primary');
      // The latest submission for the period is the effective one.
      expect(strong.json.periods[0].effective.id).toBe(second.json.id);
      expect(strong.json.periods[0].submissions.map((s: { id: string }) => s.id)).toEqual([second.json.id, first.json.id]);
    } finally {
      await replica.psql('SELECT pg_wal_replay_resume()');
    }
    await waitFor('replica to catch up', async () => (await getJson(`${api.url}/v1/meters/${meterId}/readings?history=true`)).json.periods[0].submissions.length === 2);
  });

  it('answers ?wait=true with 201 once committed, carrying flags', async () => {
    const meterId = testRunPrefix('wait');
    const res = await postJson(`${api.url}/v1/readings?wait=true`, { meterId, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 42.5, t2: 1 }, source: 'sms' });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ status: 'stored', meterId, values: { t1: 42.5, t2: 1 }, source: 'sms', flags: [] });
    expect(typeof res.json.storedAt).toBe('string');
    const status = await getJson(`${api.url}/v1/readings/${res.json.id}`);
    expect(status.json.status).toBe('stored');
  });

  it('one idempotency key sent 10 times at once makes one row; the same key with another payload is 409', async () => {
    const meterId = testRunPrefix('idem');
    const key = newKey();
    const body = { meterId, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 7 } };
    const results = await Promise.all(Array.from({ length: 10 }, () => postJson(`${api.url}/v1/readings`, body, { 'idempotency-key': key })));
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(202));
    expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
    const conflict = await postJson(`${api.url}/v1/readings`, { ...body, values: { t1: 8 } }, { 'idempotency-key': key });
    expect(conflict.status).toBe(409);
    expect(conflict.json.error.details[0].path).toBe('Idempotency-Key');
    await waitFor('the reading to be stored', async () => (await getJson(`${api.url}/v1/readings/${results[0]!.json.id}`)).json?.status === 'stored');
    await sleep(300);
    const count = await withDb(stack.databaseUrl, async (c) => (await c.query('SELECT count(*)::int AS n, min(t1)::text AS t1 FROM readings WHERE meter_id = $1', [meterId])).rows[0]);
    expect(count).toEqual({ n: 1, t1: '7.000' });
  });

  it('reports queued, stored and unknown ids', async () => {
    const meterId = testRunPrefix('status');
    const body = { meterId, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 42.5 } };
    // With the writer paused, a reading can only be queued: the status must say so.
    writer.child.kill('SIGSTOP');
    let id: string;
    try {
      const res = await postJson(`${api.url}/v1/readings`, body);
      expect(res.status).toBe(202);
      id = res.json.id as string;
      const queued = await getJson(`${api.url}/v1/readings/${id}`);
      expect(queued.status).toBe(200);
      expect(queued.json).toMatchObject({ id, status: 'queued' });
    } finally {
      writer.child.kill('SIGCONT');
    }
    await waitFor('the reading to be stored', async () => (await getJson(`${api.url}/v1/readings/${id}`)).json.status === 'stored', 20_000);
    const stored = await getJson(`${api.url}/v1/readings/${id}`);
    expect(stored.json).toMatchObject({ id, status: 'stored', meterId, values: { t1: 42.5 }, readAt: body.readAt });
    const missing = await getJson(`${api.url}/v1/readings/00000000-0000-4000-8000-000000000000`);
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('not_found');
    const malformed = await getJson(`${api.url}/v1/readings/not-a-uuid`);
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.details[0].path).toBe('id');
  });

  describe('bad input gets a clear 4xx naming the field, never a 500', () => {
    const now = () => new Date(Date.now() - 60_000).toISOString();
    const cases: { name: string; body: () => unknown; contentType?: string; status: number; path?: string }[] = [
      { name: 'malformed JSON', body: () => '{"meterId": "a",', status: 400, path: '$' },
      { name: 'empty body', body: () => '', status: 400 },
      { name: 'a JSON array', body: () => [1, 2], status: 400, path: '$' },
      { name: 'wrong content type', body: () => 'meterId=a', contentType: 'application/x-www-form-urlencoded', status: 415 },
      { name: 'text/plain', body: () => '{}', contentType: 'text/plain', status: 415 },
      { name: '__proto__ key', body: () => `{"__proto__": {"polluted": true}, "meterId": "a", "readAt": "${now()}", "values": {"t1": 1}}`, status: 400 },
      { name: 'constructor key', body: () => `{"constructor": {"prototype": {"polluted": true}}, "meterId": "a", "readAt": "${now()}", "values": {"t1": 1}}`, status: 400 },
      { name: 'unknown field', body: () => ({ meterId: 'a', readAt: now(), values: { t1: 1 }, tariff: 'x' }), status: 400, path: 'tariff' },
      { name: '1e309', body: () => `{"meterId": "a", "readAt": "${now()}", "values": {"t1": 1e309}}`, status: 422, path: 'values.t1' },
      { name: 'value as a string', body: () => ({ meterId: 'a', readAt: now(), values: { t1: '12' } }), status: 400, path: 'values.t1' },
      { name: 'negative value', body: () => ({ meterId: 'a', readAt: now(), values: { t1: -0.5 } }), status: 422, path: 'values.t1' },
      { name: 'NUL in meterId', body: () => ({ meterId: 'ab\u0000c', readAt: now(), values: { t1: 1 } }), status: 422, path: 'meterId' },
      { name: 'non-ASCII meterId', body: () => ({ meterId: 'счётчик', readAt: now(), values: { t1: 1 } }), status: 422, path: 'meterId' },
      { name: 'overlong meterId', body: () => ({ meterId: 'm'.repeat(33), readAt: now(), values: { t1: 1 } }), status: 422, path: 'meterId' },
      { name: 'huge string', body: () => ({ meterId: 'x'.repeat(500_000), readAt: now(), values: { t1: 1 } }), status: 422, path: 'meterId' },
      { name: 'readAt without offset', body: () => ({ meterId: 'a', readAt: '2026-11-20T10:00:00', values: { t1: 1 } }), status: 422, path: 'readAt' },
      { name: 'readAt far in the future', body: () => ({ meterId: 'a', readAt: '2099-01-01T00:00:00Z', values: { t1: 1 } }), status: 422, path: 'readAt' },
      { name: 'readAt before 2000', body: () => ({ meterId: 'a', readAt: '1999-12-31T23:59:59Z', values: { t1: 1 } }), status: 422, path: 'readAt' },
      { name: 'deep nesting', body: () => `{"meterId": "a", "readAt": "${now()}", "values": {"t1": ${'['.repeat(50_000)}${']'.repeat(50_000)}}}`, status: 400, path: 'values.t1' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const res = await postJson(`${api.url}/v1/readings`, c.body(), c.contentType ? { 'content-type': c.contentType } : {});
        expect(res.status, JSON.stringify(res.json).slice(0, 300)).toBe(c.status);
        expect(res.json.error.code).toEqual(expect.any(String));
        expect(JSON.stringify(res.json)).not.toContain('    at ');
        if (c.path) expect(res.json.error.details.map((d: { path: string }) => d.path)).toContain(c.path);
      });
    }

    it('body above the limit: 413 with a JSON error, from the declared length, before a byte of the body is read', async () => {
      // The API answers a Content-Length over its limit at once and closes the connection. A
      // client still sending the body then fails with EPIPE or ECONNRESET, or reads the answer,
      // depending on timing; so this client sends the headers only and reads the answer first.
      // (nginx's own 413 for a real oversized body is covered by test/cluster.)
      const res = await headersOnlyPost(`${api.url}/v1/readings`, 2 * 1_048_576);
      expect(res.status).toBe(413);
      expect(res.contentType).toMatch(/^application\/json/);
      expect(res.json.error.code).toEqual(expect.any(String));
      expect(res.body).not.toContain('    at ');
    });

    it('a streamed body (no Content-Length) that grows past the limit: 413 with a JSON error', async () => {
      // One chunk of limit + 1 bytes and nothing after it (not even the chunk's closing CRLF): the
      // API has read every byte sent when it answers, so its close cannot reset the connection
      // under the answer, whatever the timing.
      const limit = 1_048_576;
      const res = await rawChunkedPost(`${api.url}/v1/readings`, limit + 1);
      expect(res.status).toBe(413);
      expect(res.json.error.code).toEqual(expect.any(String));
      expect(res.body).not.toContain('    at ');
    });

    it('stays alive and keeps taking readings after the pollution attempts (that nothing is polluted: libs/readings/src/validation.spec.ts)', async () => {
      const live = await getJson(`${api.url}/health/live`);
      expect(live.status).toBe(200);
      const res = await postJson(`${api.url}/v1/readings`, { meterId: testRunPrefix('after-proto'), readAt: now(), values: { t1: 1 } });
      expect(res.status).toBe(202);
      expect(res.json).toEqual({ id: expect.any(String), status: 'queued' });
    });

    it('rejects a batch above the limit with 413 and accepts none of it', async () => {
      const prefix = testRunPrefix('toolarge');
      const readings = Array.from({ length: 1_001 }, (_, i) => validReading(prefix, i));
      const res = await postJson(`${api.url}/v1/readings/batch`, { readings });
      expect(res.status).toBe(413);
      expect(res.json.error.details[0].path).toBe('readings');
      await sleep(500);
      const n = await withDb(stack.databaseUrl, async (c) => (await c.query('SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1', [`${prefix}-%`])).rows[0].n);
      expect(n).toBe(0);
    });

    it('rejects a malformed batch envelope with 400', async () => {
      for (const body of [{ readings: 'x' }, { items: [] }, [], { readings: [] }]) {
        const res = await postJson(`${api.url}/v1/readings/batch`, body);
        expect(res.status).toBe(400);
        expect(res.json.error.details.length).toBeGreaterThan(0);
      }
    });
  });

  it('exposes readiness and Prometheus metrics', async () => {
    const ready = await getJson(`${api.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.json.info).toMatchObject({ redis: { status: 'up' }, database: { status: 'up', backend: 'postgres' }, backlog: { status: 'up' } });
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(/http_requests_total\{[^}]*route="\/v1\/readings"[^}]*status="202"/);
    expect(metrics).toMatch(/readings_accepted_total\{[^}]*\} [1-9]/);
    expect(metrics).toContain('http_request_duration_seconds_bucket');
    expect(metrics).toContain('queue_depth_jobs');
    const writerMetrics = await (await fetch(`${writer.url}/metrics`)).text();
    expect(writerMetrics).toMatch(/writer_rows_written_total\{[^}]*\} [1-9]/);
    expect(writerMetrics).toContain('writer_batch_size_bucket');
    expect(writerMetrics).toContain('writer_write_duration_seconds_bucket');
  });

  it('refuses more than 100 headers with 431 naming them (behind nginx the edge refuses first; here the replica itself)', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 150; i++) headers[`x-h${i}`] = 'v';
    const res = await postJson(`${api.url}/v1/readings`, { meterId: testRunPrefix('headers'), readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 1 } }, headers);
    expect(res.status).toBe(431);
    expect(res.json.error).toMatchObject({ code: 'headers_too_large', details: [{ path: 'headers' }] });
    const few = await postJson(`${api.url}/v1/readings`, { meterId: testRunPrefix('headers'), readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 1 } }, { 'x-a': '1' });
    expect(few.status).toBe(202);
  });

  it('carries the request id from the request into the stored row and the logs', async () => {
    // The request log is off by default (LOG_REQUESTS); a replica with it on shows the id there.
    const logged = await startApi({ ...env, LOG_REQUESTS: 'true' }, logDir, 'api-request-log');
    const requestId = `trace-${newKey()}`;
    const meterId = testRunPrefix('trace');
    try {
      const res = await postJson(`${logged.url}/v1/readings?wait=true`, { meterId, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 1 } }, { 'x-request-id': requestId });
      expect(res.status).toBe(201);
      expect(res.headers.get('x-request-id')).toBe(requestId);
      const stored = await withDb(stack.databaseUrl, async (c) => (await c.query('SELECT request_id FROM readings WHERE id = $1', [res.json.id])).rows[0]);
      expect(stored.request_id).toBe(requestId);
    } finally {
      await logged.stop();
    }
    const lines = readFileSync(logged.logFile, 'utf8').split('\n').filter((l) => l.includes(requestId)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ msg: 'request', requestId, method: 'POST', route: '/v1/readings', status: 201 })]);
  });
});
