import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey } from '#libs/database';
import { authHeaders, registerClient, revokeClient } from '../support/auth.js';
import { withDb } from '../support/db.js';
import { getJson, postJson } from '../support/ledger.js';
import { type AppProcess, startApi, startWriter } from '../support/processes.js';
import { testRunPrefix } from '../support/readings-factory.js';

const stack = inject('stack');
const logDir = mkdtempSync(join(tmpdir(), 'mi-e2e-auth-'));
const CACHE_TTL_MS = 1_000;
const env = {
  DATABASE_URL: stack.databaseUrl,
  DATABASE_REPLICA_URL: stack.replicaUrl,
  REDIS_URL: stack.redisUrl,
  REDIS_PREFIX: `auth-${Date.now()}`,
  RATE_LIMIT: '1000000',
  AUTH_CACHE_TTL_MS: String(CACHE_TTL_MS),
  // The matrix below sends many bad keys from 127.0.0.1; the guessing brake has its own test.
  AUTH_FAILURES_PER_WINDOW: '100000',
};
const run = testRunPrefix('auth');
const keys = { a: generateApiKey(), b: generateApiKey(), ops: generateApiKey(), submitOnly: generateApiKey(), readOnly: generateApiKey() };
let api: AppProcess;
let writer: AppProcess;
const started: AppProcess[] = [];

function reading(meter: string, t1: number, extra: Record<string, unknown> = {}) {
  return { meterId: `${run}-${meter}`, accountId: '100200300', readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1 }, ...extra };
}

/** A request written byte by byte: header values fetch would refuse to send (control characters). */
function rawPost(url: string, headerLines: string[], body: string): Promise<{ status: number; text: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    socket.on('error', reject);
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), text: data.slice(data.indexOf('\r\n\r\n') + 4) }));
    socket.write(`POST /v1/readings HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headerLines.map((l) => `${l}\r\n`).join('')}\r\n${body}`);
  });
}

async function storedFor(meterPrefix: string): Promise<number> {
  return withDb(stack.databaseUrl, async (c) => Number((await c.query('SELECT count(*) AS n FROM readings WHERE meter_id LIKE $1', [`${meterPrefix}%`])).rows[0].n));
}

beforeAll(async () => {
  registerClient(keys.a, { databaseUrl: stack.databaseUrl, name: `${run}-a`, scopes: 'submit,read:own' });
  registerClient(keys.b, { databaseUrl: stack.databaseUrl, name: `${run}-b`, scopes: 'submit,read:own' });
  registerClient(keys.ops, { databaseUrl: stack.databaseUrl, name: `${run}-ops`, scopes: 'read:all' });
  registerClient(keys.submitOnly, { databaseUrl: stack.databaseUrl, name: `${run}-submit-only`, scopes: 'submit' });
  registerClient(keys.readOnly, { databaseUrl: stack.databaseUrl, name: `${run}-read-only`, scopes: 'read:own' });
  [writer, api] = await Promise.all([startWriter(env, logDir, 'writer-auth'), startApi(env, logDir, 'api-auth')]);
  started.push(writer, api);
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

describe('client keys', () => {
  it('refuses every bad credential with 401 naming Authorization, a JSON error and WWW-Authenticate; nothing is stored', async () => {
    const body = reading('bad-cred', 1);
    const unissued = generateApiKey();
    const revoked = generateApiKey();
    registerClient(revoked, { databaseUrl: stack.databaseUrl, name: `${run}-revoked`, scopes: 'submit' });
    revokeClient(`${run}-revoked`, stack.databaseUrl);
    const cases: [string, Record<string, string>][] = [
      ['no credential', { authorization: '' }],
      ['an empty Bearer token', { authorization: 'Bearer ' }],
      ['a 10 KB key', { authorization: `Bearer mik_${'a'.repeat(10_240)}` }],
      ['a revoked key', authHeaders(revoked)],
      ['a well-formed key never issued', authHeaders(unissued)],
      ['the right key in X-API-Key', { authorization: '', 'x-api-key': keys.a }],
      ['the right key without its scheme', { authorization: keys.a }],
      ['the right key under another scheme', { authorization: `Basic ${keys.a}` }],
      ['a key one character short', authHeaders(keys.a.slice(0, -1))],
    ];
    for (const [name, headers] of cases) {
      // An empty authorization value means: send no such header at all.
      const sent = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== ''));
      const res = await fetch(`${api.url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...sent }, body: JSON.stringify(body) });
      const json = (await res.json()) as { error: { code: string; details: { path: string }[] } };
      expect(res.status, name).toBe(401);
      expect(json.error.code, name).toBe('unauthenticated');
      expect(json.error.details.map((d) => d.path), name).toEqual(['Authorization']);
      expect(res.headers.get('www-authenticate'), name).toMatch(/^Bearer realm="meter-intake"/);
    }
    // Control characters: Node's parser refuses the header before the guard sees it; the answer is
    // still the API's JSON 400 naming the headers (or, where the parser lets it through, the guard's 401).
    for (const value of [`Bearer ${keys.a.slice(0, 10)}\x01${keys.a.slice(11)}`, `Bearer ${keys.a}\x7f`]) {
      const res = await rawPost(api.url, [`Authorization: ${value}`], JSON.stringify(body));
      const json = JSON.parse(res.text) as { error: { code: string; details: { path: string }[] } };
      if (res.status === 400) expect(json.error, JSON.stringify(value)).toMatchObject({ code: 'bad_request', details: [{ path: 'headers' }] });
      else expect([res.status, json.error.code], JSON.stringify(value)).toEqual([401, 'unauthenticated']);
    }
    await sleep(500);
    expect(await storedFor(`${run}-bad-cred`)).toBe(0);
  });

  it('asks for no key on health, and the scope matrix: 403 for a valid key without the scope', async () => {
    expect((await fetch(`${api.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${api.url}/health/ready`)).status).toBe(200);
    const id = '00000000-0000-4000-8000-000000000001';
    const matrix: [keyof typeof keys, 'submit' | 'batch' | 'get' | 'history', number][] = [
      ['submitOnly', 'submit', 202],
      ['submitOnly', 'batch', 202],
      ['submitOnly', 'get', 403],
      ['submitOnly', 'history', 403],
      ['readOnly', 'submit', 403],
      ['readOnly', 'batch', 403],
      ['readOnly', 'get', 404],
      ['readOnly', 'history', 200],
      ['ops', 'submit', 403],
      ['ops', 'batch', 403],
      ['ops', 'get', 404],
      ['ops', 'history', 200],
      ['a', 'submit', 202],
      ['a', 'get', 404],
    ];
    for (const [who, call, expected] of matrix) {
      const h = authHeaders(keys[who]);
      const res =
        call === 'submit'
          ? await postJson(`${api.url}/v1/readings`, reading(`scope-${who}`, 5), h)
          : call === 'batch'
            ? await postJson(`${api.url}/v1/readings/batch`, { readings: [reading(`scope-${who}-b`, 5)] }, h)
            : call === 'get'
              ? await getJson(`${api.url}/v1/readings/${id}`, h)
              : await getJson(`${api.url}/v1/meters/${run}-scope/readings`, h);
      expect(res.status, `${who} ${call}`).toBe(expected);
      if (expected === 403) {
        expect(res.json.error.code).toBe('forbidden');
        expect(res.json.error.details[0].path).toBe('Authorization');
      }
    }
  });

  it('shows a client only its own readings: another client gets the 404 of a reading that does not exist; operators see all', async () => {
    const mine = await postJson(`${api.url}/v1/readings?wait=true`, reading('shared-meter', 100), authHeaders(keys.a));
    const theirs = await postJson(`${api.url}/v1/readings?wait=true`, reading('shared-meter', 200), authHeaders(keys.b));
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    const own = await getJson(`${api.url}/v1/readings/${mine.json.id}`, authHeaders(keys.a));
    expect(own.status).toBe(200);
    expect(own.json).toMatchObject({ id: mine.json.id, status: 'stored', accountId: '100200300', values: { t1: 100 } });
    expect(own.json).not.toHaveProperty('clientId');
    const other = await getJson(`${api.url}/v1/readings/${theirs.json.id}`, authHeaders(keys.a));
    const missing = await getJson(`${api.url}/v1/readings/00000000-0000-4000-8000-00000000abcd`, authHeaders(keys.a));
    expect(other.status).toBe(404);
    expect(missing.status).toBe(404);
    // The same answer, but for the id it names.
    expect(other.json.error.message.replace(theirs.json.id, 'ID')).toBe(missing.json.error.message.replace('00000000-0000-4000-8000-00000000abcd', 'ID'));
    expect((await getJson(`${api.url}/v1/readings/${theirs.json.id}`, authHeaders(keys.ops))).json).toMatchObject({ status: 'stored', values: { t1: 200 } });

    const history = (key: string) => getJson(`${api.url}/v1/meters/${run}-shared-meter/readings?history=true&consistency=strong`, authHeaders(key));
    const ids = (res: Awaited<ReturnType<typeof history>>) => (res.json.periods as { submissions: { id: string }[] }[]).flatMap((p) => p.submissions.map((s) => s.id));
    expect(ids(await history(keys.a))).toEqual([mine.json.id]);
    expect(ids(await history(keys.b))).toEqual([theirs.json.id]);
    expect(ids(await history(keys.ops)).sort()).toEqual([mine.json.id, theirs.json.id].sort());
    // Only its own: for a meter it never submitted, what a meter with no readings gets.
    const strangers = await getJson(`${api.url}/v1/meters/${run}-shared-meter/readings?consistency=strong`, authHeaders(keys.readOnly));
    expect(strangers.status).toBe(200);
    expect(strangers.json.periods).toEqual([]);
  });

  it('applies the same rule to readings still queued in Redis and to meter history from the replica', async () => {
    // A replica on a queue no writer drains: its readings stay queued.
    const queuedOnly = await startApi({ ...env, REDIS_PREFIX: `${env.REDIS_PREFIX}-nowriter` }, logDir, 'api-auth-queued');
    started.push(queuedOnly);
    const queued = await postJson(`${queuedOnly.url}/v1/readings`, reading('queued-meter', 7), authHeaders(keys.a));
    expect(queued.status).toBe(202);
    expect((await getJson(`${queuedOnly.url}/v1/readings/${queued.json.id}`, authHeaders(keys.a))).json).toMatchObject({ status: 'queued', values: { t1: 7 } });
    const stranger = await getJson(`${queuedOnly.url}/v1/readings/${queued.json.id}`, authHeaders(keys.b));
    expect(stranger.status).toBe(404);
    expect(stranger.json.error.code).toBe('not_found');
    expect((await getJson(`${queuedOnly.url}/v1/readings/${queued.json.id}`, authHeaders(keys.ops))).json.status).toBe('queued');

    // consistency=eventual (the default) reads the streaming replica: the same filter applies there.
    const mine = await postJson(`${api.url}/v1/readings?wait=true`, reading('replica-meter', 300), authHeaders(keys.a));
    const theirs = await postJson(`${api.url}/v1/readings?wait=true`, reading('replica-meter', 400), authHeaders(keys.b));
    const url = `${api.url}/v1/meters/${run}-replica-meter/readings?history=true`;
    const ids = (res: Awaited<ReturnType<typeof getJson>>) => (res.json.periods as { submissions: { id: string }[] }[]).flatMap((p) => p.submissions.map((x) => x.id));
    for (let i = 0; i < 200 && ids(await getJson(url, authHeaders(keys.ops))).length < 2; i++) await sleep(50);
    const fromReplica = await getJson(url, authHeaders(keys.a));
    expect(fromReplica.json.readFrom).toBe('replica');
    expect(ids(fromReplica)).toEqual([mine.json.id]);
    expect(ids(await getJson(url, authHeaders(keys.b)))).toEqual([theirs.json.id]);
  });

  it('scopes idempotency keys to the client: a stranger who sends a client\'s key first cannot squat it', async () => {
    const key = `${run}-portal-000042`;
    const squatter = await postJson(`${api.url}/v1/readings?wait=true`, reading('squat', 666), { ...authHeaders(keys.b), 'idempotency-key': key });
    expect(squatter.status).toBe(201);
    const body = reading('squat', 42);
    const real = await postJson(`${api.url}/v1/readings?wait=true`, body, { ...authHeaders(keys.a), 'idempotency-key': key });
    expect(real.status).toBe(201);
    expect(real.json.id).not.toBe(squatter.json.id);
    const stored = await getJson(`${api.url}/v1/readings/${real.json.id}`, authHeaders(keys.a));
    expect(stored.json.values).toEqual({ t1: 42 });
    // The client's own resend still converges on its row.
    const again = await postJson(`${api.url}/v1/readings`, body, { ...authHeaders(keys.a), 'idempotency-key': key });
    expect([again.status, again.json.id]).toEqual([202, real.json.id]);
  });

  it(`stops a revoked key, unused since, within two AUTH_CACHE_TTL_MS (${CACHE_TTL_MS} ms) periods: the background check drops it`, async () => {
    const key = generateApiKey();
    registerClient(key, { databaseUrl: stack.databaseUrl, name: `${run}-to-revoke`, scopes: 'submit' });
    expect((await postJson(`${api.url}/v1/readings`, reading('revoke', 1), authHeaders(key))).status).toBe(202);
    const revokedAt = Date.now();
    revokeClient(`${run}-to-revoke`, stack.databaseUrl);
    // The replica checks every key it knows once per TTL: two TTLs after the revocation at least one check began after it and has finished.
    await sleep(Math.max(0, revokedAt + 2 * CACHE_TTL_MS + 200 - Date.now()));
    const after = await postJson(`${api.url}/v1/readings`, reading('revoke', 2), authHeaders(key));
    expect(after.status).toBe(401);
  });

  it('slows key guessing: after AUTH_FAILURES_PER_WINDOW bad keys from one address, 429 before any lookup; keys the replica trusts still pass', async () => {
    const guarded = await startApi({ ...env, AUTH_FAILURES_PER_WINDOW: '5', AUTH_FAILURE_WINDOW_MS: '60000' }, logDir, 'api-auth-guess');
    started.push(guarded);
    // Trusted before the guessing starts.
    expect((await postJson(`${guarded.url}/v1/readings`, reading('guess', 1), authHeaders(keys.a))).status).toBe(202);
    for (let i = 0; i < 5; i++) expect((await postJson(`${guarded.url}/v1/readings`, reading('guess', 1), authHeaders(generateApiKey()))).status).toBe(401);
    const blocked = await postJson(`${guarded.url}/v1/readings`, reading('guess', 1), authHeaders(generateApiKey()));
    expect(blocked.status).toBe(429);
    expect(blocked.json.error.code).toBe('too_many_auth_failures');
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    // A valid key this replica has not checked yet waits out the window too: no lookup for this address.
    expect((await postJson(`${guarded.url}/v1/readings`, reading('guess', 1), authHeaders(keys.b))).status).toBe(429);
    // Known keys go on passing beyond the TTL too: the background check keeps them, it does not expire them.
    await sleep(CACHE_TTL_MS + 100);
    expect((await postJson(`${guarded.url}/v1/readings`, reading('guess', 2), authHeaders(keys.a))).status).toBe(202);
  });
});
