import { mkdtempSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, RedisInstance, waitFor } from '../../scripts/lib/stack.mjs';
import { generateApiKey } from '#libs/database';
import { authHeaders, registerClient, revokeClient } from '../support/auth.js';
import { getJson, Ledger, postJson, validReading, verifyLedger } from '../support/ledger.js';
import { type AppProcess, ProcessGroup } from '../support/processes.js';
import { withQueue } from '../support/queue.js';
import { testRunPrefix } from '../support/readings-factory.js';
import { stackControl } from '../support/stack-control.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'mi-e2e-resilience-'));
const baseEnv = { DATABASE_URL: stack.databaseUrl, DATABASE_REPLICA_URL: stack.replicaUrl, RATE_LIMIT: '1000000' };

const processes = new ProcessGroup(baseEnv, dir);
const api = (env: Record<string, string>, name: string, waitPath?: string) => processes.api(env, name, waitPath);
const writer = (env: Record<string, string>, name: string) => processes.writer(env, name);

afterAll(() => processes.stopAll());

describe('Redis outage', () => {
  let redis: RedisInstance;

  beforeAll(async () => {
    redis = new RedisInstance(dir, await freePort(), join(dir, 'redis-outage.log'));
    await redis.start();
  });

  afterAll(async () => {
    // Processes first: a writer whose Redis is gone waits out its drain timeout.
    await processes.stopAll();
    await redis.stop();
  });

  it('answers 503 within about a second while Redis is down, 202 after it is back, and keeps every acknowledged job (AOF)', async () => {
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: 'outage' };
    const a = await api(env, 'api-outage');
    const prefix = testRunPrefix('outage');
    const ledger = new Ledger();
    const send = async (i: number) => {
      const body = validReading(prefix, i);
      const started = performance.now();
      const res = await postJson(`${a.url}/v1/readings`, body);
      ledger.record({ body, valid: true, outcome: res.status === 202 ? 'acknowledged' : res.status < 500 ? 'rejected' : 'indeterminate', status: res.status, id: res.json?.id });
      return { res, ms: performance.now() - started };
    };
    for (let i = 0; i < 20; i++) expect((await send(i)).res.status).toBe(202);

    await redis.kill9();
    for (let i = 20; i < 30; i++) {
      const { res, ms } = await send(i);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(res.json.error.code).toBe('queue_unavailable');
      expect(ms).toBeLessThan(1_500);
    }
    const ready = await getJson(`${a.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.json.details.redis.status).toBe('down');
    // Through nginx (which marks every request it passes on) the same answer names nothing internal.
    const edge = await fetch(`${a.url}/health/ready`, { headers: { 'x-meter-edge': '1' } });
    expect(edge.status).toBe(503);
    expect(edge.headers.get('retry-after')).toBe('1');
    expect(await edge.json()).toEqual({ error: { code: 'unavailable', message: 'not ready', details: [] } });
    expect((await getJson(`${a.url}/health/live`)).status).toBe(200);

    await redis.start();
    await waitFor('the API to accept again', async () => (await send(30)).res.status === 202, 20_000, 200);

    // The writer starts only now: everything acknowledged before the crash must still be queued.
    await writer(env, 'writer-outage');
    const v = await verifyLedger(stack.databaseUrl, ledger, prefix, 30_000);
    expect(v.acknowledged).toBeGreaterThanOrEqual(21);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.unexpectedRows).toBe(0);
  });

  it('a running writer resumes consuming after Redis restarts', async () => {
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: 'resume' };
    const a = await api(env, 'api-resume');
    await writer(env, 'writer-resume');
    const prefix = testRunPrefix('resume');
    const ledger = new Ledger();
    const body0 = validReading(prefix, 0);
    const first = await postJson(`${a.url}/v1/readings?wait=true`, body0);
    expect(first.status).toBe(201);
    ledger.record({ body: body0, valid: true, outcome: 'acknowledged', status: 201, id: first.json.id });
    await redis.kill9();
    await redis.start();
    await waitFor('the API to accept again', async () => (await getJson(`${a.url}/health/ready`)).status === 200, 20_000, 200);
    for (let i = 1; i <= 10; i++) {
      const body = validReading(prefix, i);
      const res = await postJson(`${a.url}/v1/readings`, body);
      expect(res.status).toBe(202);
      ledger.record({ body, valid: true, outcome: 'acknowledged', status: 202, id: res.json.id });
    }
    const v = await verifyLedger(stack.databaseUrl, ledger, prefix, 30_000);
    expect(v.lost).toEqual([]);
    expect(v.stored).toBe(11);
  });
});

describe('shedding and limits', () => {
  it('refuses a request that waited past SHED_QUEUE_TIME_MS after nginx passed it on, with 503 and Retry-After, and stores none of it', async () => {
    const env = { REDIS_URL: stack.redisUrl, REDIS_PREFIX: `queue-time-${Date.now()}`, SHED_QUEUE_TIME_MS: '200' };
    const a = await api(env, 'api-queue-time');
    const prefix = testRunPrefix('queue-time');
    const stamp = (agoMs: number) => ({ 'x-request-start': `t=${((Date.now() - agoMs) / 1000).toFixed(3)}` });
    const late = await postJson(`${a.url}/v1/readings`, validReading(prefix, 1), stamp(1_000));
    expect(late.status).toBe(503);
    expect(late.json.error.code).toBe('overloaded');
    expect(late.json.error.message).toMatch(/waited \d+ ms/);
    expect(late.headers.get('retry-after')).toBe('1');
    // Within the threshold, or without a stamp (not from nginx): taken.
    expect((await postJson(`${a.url}/v1/readings`, validReading(prefix, 2), stamp(0))).status).toBe(202);
    expect((await postJson(`${a.url}/v1/readings`, validReading(prefix, 3))).status).toBe(202);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/^intake_shed_total\{reason="queue_time"[^}]*\} 1$/m);
    expect(await withQueue(stack.redisUrl, env.REDIS_PREFIX, (queue) => queue.counts())).toEqual({ waiting: 2, active: 0, failed: 0 });
  });

  it('sheds with 503 + Retry-After above the backlog high-water mark, and accepts nothing it sheds', async () => {
    const env = { REDIS_URL: stack.redisUrl, REDIS_PREFIX: `shed-${Date.now()}`, QUEUE_HIGH_WATER_JOBS: '5', BACKLOG_POLL_MS: '50' };
    // No writer: the backlog only grows.
    const a = await api(env, 'api-shed');
    const prefix = testRunPrefix('shed');
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await postJson(`${a.url}/v1/readings`, validReading(prefix, i));
      statuses.push(res.status);
      if (res.status === 503) {
        expect(res.json.error.code).toBe('overloaded');
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const accepted = statuses.filter((s) => s === 202).length;
    expect(accepted).toBeGreaterThanOrEqual(5);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 202 || s === 503)).toBe(true);
    const ready = await getJson(`${a.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.json.error.backlog.status).toBe('down');
    // Exactly the acknowledged readings are in the queue: every job holds one reading here.
    expect(await withQueue(stack.redisUrl, env.REDIS_PREFIX, (queue) => queue.counts())).toEqual({ waiting: accepted, active: 0, failed: 0 });
  });

  it('rate-limits one client across all replicas with 429 and Retry-After', async () => {
    const prefix = `limit-${Date.now()}`;
    const env = { REDIS_URL: stack.redisUrl, REDIS_PREFIX: prefix, RATE_LIMIT: '20', RATE_LIMIT_WINDOW_MS: '60000', RATE_LIMIT_SYNC_MS: '50' };
    const [a, b] = await Promise.all([api(env, 'api-limit-a'), api(env, 'api-limit-b')]);
    const run = testRunPrefix('limit');
    const portal = generateApiKey();
    const amr = generateApiKey();
    registerClient(portal, { databaseUrl: stack.databaseUrl, name: `${run}-portal`, scopes: 'submit' });
    // A head-end with a limit of its own, above the service's RATE_LIMIT.
    registerClient(amr, { databaseUrl: stack.databaseUrl, name: `${run}-amr`, scopes: 'submit', rateLimit: 40 });
    const send = async (target: AppProcess, n: number, from: number, key = portal) => {
      const statuses: number[] = [];
      for (let i = from; i < from + n; i++) {
        const res = await postJson(`${target.url}/v1/readings`, validReading(run, i), authHeaders(key));
        statuses.push(res.status);
        if (res.status === 429) {
          expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
          expect(res.json.error.code).toBe('rate_limited');
        }
      }
      return statuses;
    };
    // Replica a counts 12 and adds them to the shared counter at its next sync (50 ms).
    expect(await send(a, 12, 0)).toEqual(Array(12).fill(202));
    const redisClient = new Redis(stack.redisUrl);
    try {
      const counter = async () => {
        const keys = await redisClient.keys(`${prefix}:rl:*`);
        return keys.length === 1 ? Number(await redisClient.get(keys[0]!)) : 0;
      };
      await waitFor('replica a synced its 12 hits', async () => (await counter()) === 12, 10_000, 20);
    } finally {
      redisClient.disconnect();
    }
    // Replica b starts its window from the shared total: 8 more pass, the rest get 429.
    expect(await send(b, 12, 12)).toEqual([...Array(8).fill(202), ...Array(4).fill(429)]);
    // New header values buy nothing: an unissued key is refused before it is counted anywhere.
    const forged = await postJson(`${a.url}/v1/readings`, validReading(run, 98), authHeaders(generateApiKey()));
    expect(forged.status).toBe(401);
    // Another client is unaffected, and its own limit (40) applies, not RATE_LIMIT (20).
    expect(await send(a, 30, 100, amr)).toEqual(Array(30).fill(202));
  });
});

describe('PostgreSQL primary outage', () => {
  it('keeps answering 202 while the primary is down (the queue absorbs), with the keys it knows; reads answer 503, and the backlog drains after', async () => {
    const { primary, replica } = stackControl();
    // A short key TTL, so during the outage every request finds its key stale, fails to look it
    // up, and must fall back to the key it already knows.
    const env = { REDIS_URL: stack.redisUrl, REDIS_PREFIX: `pgdown-${Date.now()}`, DB_CONNECT_TIMEOUT_MS: '1000', AUTH_CACHE_TTL_MS: '200', AUTH_LOOKUP_TIMEOUT_MS: '500' };
    const a = await api(env, 'api-pgdown');
    await writer(env, 'writer-pgdown');
    const prefix = testRunPrefix('pgdown');
    const ledger = new Ledger();
    let i = 0;
    const sendSome = async (n: number) => {
      for (let k = 0; k < n; k++, i++) {
        const body = validReading(prefix, i);
        const res = await postJson(`${a.url}/v1/readings`, body);
        expect(res.status).toBe(202);
        ledger.record({ body, valid: true, outcome: 'acknowledged', status: 202, id: res.json.id });
      }
    };
    await sendSome(20);
    // A key this replica knew and that was revoked before the outage must not come back during it.
    const revoked = generateApiKey();
    const rvPrefix = testRunPrefix('pgdown-revoked');
    registerClient(revoked, { databaseUrl: stack.databaseUrl, name: `${prefix}-revoked`, scopes: 'submit' });
    expect((await postJson(`${a.url}/v1/readings`, validReading(rvPrefix, 0), authHeaders(revoked))).status).toBe(202);
    revokeClient(`${prefix}-revoked`, stack.databaseUrl);
    await sleep(3 * 200 + 300); // three background checks of the known keys (AUTH_CACHE_TTL_MS 200)
    await primary.stop('fast');
    let late: AppProcess;
    try {
      await sleep(300);
      await sendSome(50);
      const again = await postJson(`${a.url}/v1/readings`, validReading(rvPrefix, 1), authHeaders(revoked));
      expect(again.status).toBe(503);
      expect(again.json.error.code).toBe('auth_unavailable');
      // A replica started during the outage comes up, but has never seen the key and cannot
      // check it: 503 with Retry-After (the key may well be valid), not 401, and nothing queued.
      late = await api(env, 'api-pgdown-late', '/health/live');
      const body = validReading(prefix, 1_000);
      const res = await postJson(`${late.url}/v1/readings`, body);
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe('auth_unavailable');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      ledger.record({ body, valid: true, outcome: 'rejected', status: 503 });
      const status = await getJson(`${a.url}/v1/readings/${ledger.acknowledged()[0]!.id}`);
      expect(status.status).toBe(503);
      expect(status.json.error.code).toBe('database_unavailable');
      const strong = await getJson(`${a.url}/v1/meters/${prefix}-1/readings?consistency=strong`);
      expect(strong.status).toBe(503);
      expect(Number(strong.headers.get('retry-after'))).toBeGreaterThan(0);
      await sendSome(30);
    } finally {
      await primary.start();
      await replica.start().catch(() => undefined);
    }
    // Once the database answers, the late replica checks the key and takes readings.
    const after = validReading(prefix, 1_001);
    await waitFor('the late replica to accept the key', async () => {
      const res = await postJson(`${late.url}/v1/readings`, after, { 'idempotency-key': `${prefix}-after` });
      if (res.status === 202) ledger.record({ body: after, valid: true, outcome: 'acknowledged', status: 202, id: res.json.id, key: `${prefix}-after` });
      return res.status === 202;
    }, 30_000, 250);
    const v = await verifyLedger(stack.databaseUrl, ledger, prefix, 60_000);
    expect(v.acknowledged).toBe(101);
    expect(v.rejectedButStored).toEqual([]);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.valueMismatch).toEqual([]);
  });
});

describe('Redis durability settings', () => {
  it('the writer refuses to start on a Redis without AOF, naming the setting', async () => {
    const plain = new RedisInstance(dir, await freePort(), join(dir, 'redis-no-aof.log'));
    await plain.start();
    try {
      await plain.cli('CONFIG', 'SET', 'appendonly', 'no');
      await expect(writer({ REDIS_URL: plain.url, REDIS_PREFIX: 'no-aof' }, 'writer-no-aof')).rejects.toThrow(/exited/);
      const log = readFileSync(join(dir, 'writer-no-aof.log'), 'utf8');
      expect(log).toContain('appendonly is off');
      await plain.cli('CONFIG', 'SET', 'appendonly', 'yes');
      await plain.cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
      await expect(writer({ REDIS_URL: plain.url, REDIS_PREFIX: 'lru' }, 'writer-lru')).rejects.toThrow(/exited/);
      expect(readFileSync(join(dir, 'writer-lru.log'), 'utf8')).toContain('maxmemory-policy is allkeys-lru');
    } finally {
      await plain.stop();
    }
  });
});
