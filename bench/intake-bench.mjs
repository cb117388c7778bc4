// Intake-path benchmark: single submissions with and without coalescing, and AMI-style
// batches, all in one run on one machine so the ratios hold. Starts its own PostgreSQL
// primary + replica and Redis in a temp folder, one API and one writer, and stops them after.
//   node bench/intake-bench.mjs [--seconds 15] [--connections 64]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, root } from '../scripts/lib/setup.mjs';
import { freePort, startStack, waitFor } from '../scripts/lib/stack.mjs';
import { processSnapshot, treeCpuSeconds } from './lib/cpu.mjs';
import { issueClientKey } from './lib/cluster.mjs';

const { values: opts } = parseArgs({ options: { seconds: { type: 'string', default: '15' }, connections: { type: 'string', default: '64' } } });
const seconds = Number(opts.seconds);
const connections = Number(opts.connections);

ensureDependencies();
ensureSystemPackages(['redis-server', 'postgres']);
ensureBuilt();
// npm packages only now: on a fresh clone they exist only after ensureDependencies().
const { default: autocannon } = await import('autocannon');
const { default: pg } = await import('pg');

const dir = mkdtempSync(join(tmpdir(), 'mi-bench-'));
const stack = await startStack({ dir, pgPort: await freePort(), replicaPort: await freePort(), redisPort: await freePort() });
const children = [];

function launch(entry, env) {
  const child = spawn(process.execPath, [entry], { cwd: root, env: { ...process.env, ...env }, stdio: 'ignore' });
  children.push(child);
  return child;
}

async function stopAll() {
  await Promise.all(children.splice(0).map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve() : (c.once('exit', resolve), c.kill('SIGTERM'))))));
}

function cpuSeconds(pid) {
  return treeCpuSeconds(processSnapshot(), pid);
}

async function redisCalls() {
  const info = await stack.redis.cli('INFO', 'commandstats');
  let calls = 0;
  for (const line of info.split('\n')) {
    const m = /calls=(\d+)/.exec(line);
    if (m) calls += Number(m[1]);
  }
  return calls;
}

async function storedCount(db, prefix) {
  return (await db.query('SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1', [`${prefix}%`])).rows[0].n;
}

const db = new pg.Client({ connectionString: stack.databaseUrl });
const migrate = spawn(process.execPath, ['dist/libs/database/src/migrate.main.js'], { cwd: root, env: { ...process.env, DATABASE_URL: stack.databaseUrl, LOG_LEVEL: 'warn' }, stdio: 'inherit' });
await new Promise((r) => migrate.once('exit', r));
await db.connect();
// Every /v1 call needs a client key: one client for the run, issued as operators do it.
const auth = { authorization: `Bearer ${issueClientKey({ databaseUrl: stack.databaseUrl, name: `intake-bench-${Date.now()}`, scopes: 'submit' })}` };

let seq = 0;
const readAt = () => new Date(Date.now() - 60_000).toISOString();

async function scenario(name, env, makeRequest, conns = connections) {
  const apiPort = await freePort();
  const prefix = `b${Date.now().toString(36)}-`;
  const common = { DATABASE_URL: stack.databaseUrl, DATABASE_REPLICA_URL: stack.replicaUrl, REDIS_URL: stack.redisUrl, REDIS_PREFIX: `bench-${name}`, RATE_LIMIT: '10000000', LOG_REQUESTS: 'false', LOG_LEVEL: 'warn', MIGRATE_ON_START: 'false' };
  const writer = launch('dist/apps/writer/src/main.js', { ...common, WRITER_HEALTH_PORT: String(await freePort()), ...env });
  const api = launch('dist/apps/api/src/main.js', { ...common, PORT: String(apiPort), ...env });
  await waitFor('api', async () => (await fetch(`http://127.0.0.1:${apiPort}/health/ready`).catch(() => undefined))?.status === 200, 60_000);
  await sleep(500);
  const before = { redis: await redisCalls(), api: cpuSeconds(api.pid), writer: cpuSeconds(writer.pid) };
  const result = await autocannon({
    url: `http://127.0.0.1:${apiPort}`,
    connections: conns,
    duration: seconds,
    requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, ...makeRequest(prefix) }) }],
  });
  const ackedRequests = result['2xx'];
  const t0 = Date.now();
  const readingsPerRequest = name.startsWith('batch') ? 500 : 1;
  const expected = ackedRequests * readingsPerRequest;
  let stored = 0;
  while (Date.now() - t0 < 120_000) {
    stored = await storedCount(db, prefix);
    if (stored >= expected) break;
    await sleep(250);
  }
  const drainMs = Date.now() - t0;
  const after = { redis: await redisCalls(), api: cpuSeconds(api.pid), writer: cpuSeconds(writer.pid) };
  const metrics = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  const metric = (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  const readingsPerJob = metric('intake_job_readings_sum') / metric('intake_job_readings_count');
  await stopAll();
  const row = {
    scenario: name,
    requestsPerSec: Math.round(result.requests.average),
    readingsAckedPerSec: Math.round((ackedRequests * readingsPerRequest) / seconds),
    p50ms: result.latency.p50,
    p99ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    storedReadingsPerSec: Math.round(stored / ((seconds * 1000 + drainMs) / 1000)),
    drainAfterLoadMs: drainMs,
    // autocannon counts only responses received before the end; requests in flight then may be stored too.
    storedMinusAcked: stored - expected,
    connections: conns,
    readingsPerJob: Number(readingsPerJob.toFixed(1)),
    redisCommandsPerReading: Number(((after.redis - before.redis) / Math.max(expected, 1)).toFixed(2)),
    apiCpuMsPerReading: Number((((after.api - before.api) * 1000) / Math.max(expected, 1)).toFixed(3)),
    writerCpuMsPerReading: Number((((after.writer - before.writer) * 1000) / Math.max(expected, 1)).toFixed(3)),
  };
  console.error(JSON.stringify(row));
  return row;
}

const single = (prefix) => {
  const i = seq++;
  return { path: '/v1/readings', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ meterId: `${prefix}${i % 200_000}`, readAt: readAt(), values: { t1: 1000 + (i % 1000), t2: 10 } }) };
};
const batch = (prefix) => {
  const base = seq;
  seq += 500;
  const readings = Array.from({ length: 500 }, (_, j) => ({ meterId: `${prefix}${(base + j) % 200_000}`, readAt: readAt(), values: { t1: 1000 + j, t2: 10 } }));
  return { path: '/v1/readings/batch', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ readings }) };
};

const rows = [];
try {
  rows.push(await scenario('single-coalesced', {}, single));
  rows.push(await scenario('single-one-job-per-reading', { COALESCE_MAX_READINGS: '1' }, single));
  rows.push(await scenario('batch-500', {}, batch, 8));
} finally {
  await stopAll();
  await db.end();
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
}

const cols = Object.keys(rows[0]);
const table = [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${cols.map((c) => r[c]).join(' | ')} |`)].join('\n');
console.log(`\nIntake benchmark, ${seconds} s per scenario, ${connections} connections, ${new Date().toISOString()}\n\n${table}`);
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', `intake-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ seconds, connections, rows }, null, 2));
