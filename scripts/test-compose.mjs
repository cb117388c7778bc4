// `npm run test:compose`: runs docker-compose.postgres.yml for real, on a machine that may have
// no Docker engine and no image registry, and checks what the Docker Compose setup promises:
//   - both compose files validate (`docker-compose config -q` and dclint's compose-spec schema);
//   - `up -d --build --scale api=3 --scale writer=2` comes up healthy (migrate ran once, exit 0);
//   - 2,000 readings sent through nginx by the load generator: every acknowledged one stored
//     exactly once (loadgen --verify against the primary) and readable from the replica;
//   - all three API replicas served traffic;
//   - scaling to api=5 live: the new replicas get traffic, no request fails;
//   - one API container stopped under load: traffic continues, no request fails;
//   - `down -v` leaves nothing behind.
// It installs Debian's docker.io, docker-compose, iptables and debootstrap when they are
// missing (as root), starts its own dockerd when no engine answers, and builds local STAND-INS
// (scripts/compose/standins/) for official images that cannot be pulled. It says which images
// were stand-ins. The last line is "N passed, N failed".
//
// Environment: COMPOSE_TEST_DIR (cache and engine state, default /var/cache/meter-intake-compose),
// COMPOSE_TEST_KEEP=1 (leave the stack and the engine running), COMPOSE_TEST_STANDINS=always
// (do not try to pull).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { composeHost } from './compose/host.mjs';
import { ensureDependencies, root } from './lib/setup.mjs';

const t0 = Date.now();
const WORK = process.env.COMPOSE_TEST_DIR || '/var/cache/meter-intake-compose';
const PROJECT = process.env.COMPOSE_TEST_PROJECT || 'mi-compose-test';
const KEEP = process.env.COMPOSE_TEST_KEEP === '1';
const STANDINS = process.env.COMPOSE_TEST_STANDINS || 'auto'; // auto | always
const COMPOSE_FILE = 'docker-compose.postgres.yml';
const COMPOSE_FILES = ['docker-compose.postgres.yml', 'docker-compose.cockroach.yml'];
const APP_IMAGE = 'meter-intake:local';
const LOGS = join(WORK, 'logs');

const results = [];
let stackUp = false;

const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;
function step(message) {
  console.log(`\n[test:compose +${elapsed()}] ${message}`);
}
function check(name, ok, detail = '') {
  results.push({ name, ok });
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? ` (${detail})` : ''}`);
  return ok;
}
function info(message) {
  console.log(`      ${message}`);
}

// The tools, the engine and the images: scripts/compose/host.mjs.
const { run, runLogged, tail, docker, dockerMust, engineEnv, ensureTools, ensureEngine, stopEngine, ensureImages, printImages, images } = composeHost({
  work: WORK,
  logs: LOGS,
  keep: KEEP,
  standins: STANDINS,
  appImage: APP_IMAGE,
  composeFile: COMPOSE_FILE,
  composeEnv: (port) => composeVars(port),
  step,
  info,
});

// ---------------------------------------------------------------------------------------------
// compose

let nginxPort = 0;
function composeVars(port = nginxPort) {
  return {
    ...engineEnv,
    COMPOSE_DOCKER_CLI_BUILD: '0',
    DOCKER_BUILDKIT: '0',
    COMPOSE_HTTP_TIMEOUT: '600',
    NGINX_BIND: '127.0.0.1',
    NGINX_PORT: String(port || 8080),
    // Every test client is one address: lift the per-client limit (nginx's own still applies).
    RATE_LIMIT: '10000000',
    // No shedding on event-loop delay: on this 2-core machine, shared with other test suites,
    // replicas booting under load trip it and answer 503 overloaded. That is the service
    // protecting itself (npm test covers it), not what this test is about: routing and scaling.
    SHED_EVENT_LOOP_DELAY_MS: '0',
  };
}
function compose(args, opts = {}) {
  return run('docker-compose', ['-p', PROJECT, '-f', COMPOSE_FILE, ...args], { ...opts, env: { ...composeVars(), ...opts.env } });
}
function composeLogged(args, logName, timeoutMs) {
  return runLogged('docker-compose', ['-p', PROJECT, '-f', COMPOSE_FILE, ...args], logName, { env: composeVars(), timeoutMs });
}

function containers() {
  const r = docker(['ps', '-a', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', '{{.ID}}']);
  const ids = r.stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const inspect = JSON.parse(dockerMust(['inspect', ...ids]));
  return inspect.map((c) => ({
    id: c.Id,
    hostname: c.Config.Hostname,
    service: c.Config.Labels['com.docker.compose.service'],
    number: Number(c.Config.Labels['com.docker.compose.container-number']),
    running: c.State.Running,
    exitCode: c.State.ExitCode,
    health: c.State.Health?.Status,
    ports: Object.entries(c.NetworkSettings.Ports ?? {}).filter(([, b]) => b && b.length > 0).map(([p, b]) => `${b[0].HostIp}:${b[0].HostPort}->${p}`),
  }));
}

async function waitHealthy(expect, timeoutMs) {
  const started = Date.now();
  let last = '';
  while (Date.now() - started < timeoutMs) {
    const cs = containers();
    const summary = Object.entries(expect).map(([svc, n]) => {
      const mine = cs.filter((c) => c.service === svc && c.running);
      return { svc, n, healthy: mine.filter((c) => c.health === 'healthy').length, running: mine.length };
    });
    last = summary.map((s) => `${s.svc} ${s.healthy}/${s.n}`).join(', ');
    if (summary.every((s) => s.healthy === s.n && s.running === s.n)) return { ok: true, summary: last, ms: Date.now() - started };
    await sleep(1_000);
  }
  return { ok: false, summary: last, ms: Date.now() - started };
}

function psql(service, sql) {
  const r = compose(['exec', '-T', service, 'psql', '-U', 'postgres', '-d', 'meter_intake', '-tAc', sql]);
  if (r.code !== 0) throw new Error(`psql on ${service}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

function apiMetrics(container) {
  const r = docker(['exec', container.id, 'node', '/app/docker/probe.mjs', 'get', '/metrics', 'api']);
  return r.code === 0 ? r.stdout : '';
}

// ---------------------------------------------------------------------------------------------
// HTTP through nginx's published port

function httpRequest(method, path, body, headers = {}, timeoutMs = 15_000) {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: nginxPort, method, path, agent: false, timeout: timeoutMs, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } : headers },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => resolve({ status: 0, headers: {}, body: String(err) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, headers: {}, body: String(err) }));
    req.end(body);
  });
}

/** A steady stream of valid single readings (each with its own Idempotency-Key) at `rate` per second. */
function steadyLoad(rate, label) {
  const run = randomBytes(3).toString('hex');
  const records = [];
  const pending = new Set();
  let n = 0;
  const timer = setInterval(() => {
    const i = n++;
    const sentAt = Date.now();
    const body = JSON.stringify({ meterId: `ct-${label}-${run}-${i}`, readAt: new Date().toISOString(), values: { t1: 1000 + i }, source: 'ami' });
    const p = httpRequest('POST', '/v1/readings', body, { 'idempotency-key': `ct-${label}-${run}-${i}` }).then((res) => {
      records.push({ sentAt, doneAt: Date.now(), status: res.status, servedBy: res.headers['x-served-by'], error: res.status === 202 ? undefined : res.body.slice(0, 200) });
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, 1000 / rate);
  return {
    records,
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
      return records;
    },
  };
}

function describeFailures(records) {
  const bad = records.filter((r) => r.status !== 202);
  const byStatus = {};
  for (const r of bad) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return { bad, text: `${records.length} requests, ${bad.length} not 202${bad.length ? `: ${JSON.stringify(byStatus)}, first: ${bad[0].error}` : ''}` };
}
function latencyText(records) {
  const ms = records.map((r) => r.doneAt - r.sentAt).sort((a, b) => a - b);
  if (ms.length === 0) return 'no requests';
  const at = (q) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))];
  return `latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${ms[ms.length - 1]} ms; ${ms.filter((x) => x >= 900).length} of ${ms.length} took 0.9 s or more`;
}
function servedByCounts(records) {
  const counts = {};
  for (const r of records) if (r.servedBy) counts[r.servedBy] = (counts[r.servedBy] ?? 0) + 1;
  return counts;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// the phases

function validateFiles() {
  step('validating the compose files (docker-compose config -q, dclint)');
  const dclint = join(root, 'node_modules', '.bin', 'dclint');
  for (const file of COMPOSE_FILES) {
    // Without any variable set (the defaults), then with .env.example's values.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NGINX_|POSTGRES_|REPLICATION_|COCKROACH_|MI_IMAGE|REDIS_IMAGE|RATE_LIMIT|TRUST_PROXY|SERVED_BY_HEADER)/.test(k)));
    const a = run('docker-compose', ['-f', file, 'config', '-q'], { env: clean });
    check(`${file}: docker-compose config -q`, a.code === 0, a.code === 0 ? '' : a.stderr.trim().slice(0, 500));
    const b = run('docker-compose', ['--env-file', '.env.example', '-f', file, 'config', '-q'], { env: clean });
    check(`${file}: docker-compose --env-file .env.example config -q`, b.code === 0, b.code === 0 ? '' : b.stderr.trim().slice(0, 500));
    const c = run(process.execPath, [dclint, '--color', 'false', file]);
    check(`${file}: dclint (compose-spec schema and rules)`, c.code === 0, c.code === 0 ? '' : (c.stdout + c.stderr).trim().slice(0, 1500));
  }
}

async function upStack() {
  nginxPort = await freePort();
  step(`docker-compose -p ${PROJECT} -f ${COMPOSE_FILE} up -d --build --scale api=3 --scale writer=2 (nginx on 127.0.0.1:${nginxPort}; build output in ${join(LOGS, 'compose-up.log')})`);
  info('test settings for the services: RATE_LIMIT=10000000 (every test client is one address), SHED_EVENT_LOOP_DELAY_MS=0 (no 503 on a busy machine)');
  compose(['down', '-v', '--remove-orphans']); // leftovers of an interrupted run
  stackUp = true;
  const up = await composeLogged(['up', '-d', '--build', '--scale', 'api=3', '--scale', 'writer=2'], 'compose-up.log', 20 * 60_000);
  if (!check('up -d --build --scale api=3 --scale writer=2 exits 0', up.code === 0, up.code === 0 ? elapsed() : tail(up.logFile, 30))) throw new Error('compose up failed');

  const healthy = await waitHealthy({ nginx: 1, api: 3, writer: 2, redis: 1, postgres: 1, 'postgres-replica': 1 }, 240_000);
  check('every service healthy (nginx 1, api 3, writer 2, redis 1, postgres 1, postgres-replica 1)', healthy.ok, healthy.summary);
  if (!healthy.ok) throw new Error('the stack did not become healthy');

  const cs = containers();
  const migrate = cs.filter((c) => c.service === 'migrate');
  check('migrate ran once and exited 0', migrate.length === 1 && !migrate[0].running && migrate[0].exitCode === 0, migrate.map((c) => `exit ${c.exitCode}`).join(', '));
  const published = cs.filter((c) => c.ports.length > 0);
  check('only nginx publishes a port', published.length === 1 && published[0].service === 'nginx', published.map((c) => `${c.service}: ${c.ports.join(' ')}`).join('; '));

  const image = JSON.parse(dockerMust(['image', 'inspect', APP_IMAGE]))[0];
  check('app image runs as the non-root user node and has a HEALTHCHECK', image.Config.User === 'node' && Array.isArray(image.Config.Healthcheck?.Test), `user ${image.Config.User}, healthcheck ${JSON.stringify(image.Config.Healthcheck?.Test)}`);
  const sizeMb = Math.round(image.Size / 1e6);
  info(`app image ${APP_IMAGE}: ${sizeMb} MB`);
  const env = image.Config.Env.join(' ');
  const nodeStandIn = images.some((i) => i.source === 'stand-in' && i.name.startsWith('node:'));
  const caInImage = env.includes('NODE_EXTRA_CA_CERTS');
  const caInDockerfile = /NODE_EXTRA_CA_CERTS|ca-certificates/.test(readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/^#.*$/gm, ''));
  check(
    'app image: no secrets baked in; CA trust only from the node stand-in, never the Dockerfile',
    !/PASSWORD|DATABASE_URL|REDIS_URL/.test(env) && !caInDockerfile && (!caInImage || nodeStandIn),
    caInImage ? 'NODE_EXTRA_CA_CERTS is inherited from the node STAND-IN base image' : '',
  );

  const aof = compose(['exec', '-T', 'redis', 'redis-cli', 'config', 'get', 'appendonly']).stdout;
  const policy = compose(['exec', '-T', 'redis', 'redis-cli', 'config', 'get', 'maxmemory-policy']).stdout;
  check('redis: appendonly yes, maxmemory-policy noeviction', /appendonly\s+yes/.test(aof) && /noeviction/.test(policy), `${aof.replace(/\s+/g, ' ').trim()}; ${policy.replace(/\s+/g, ' ').trim()}`);

  const repl = psql('postgres', "SELECT s.slot_name || ':' || s.active || ':' || coalesce(r.state, '-') FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid");
  const recovery = psql('postgres-replica', 'SELECT pg_is_in_recovery()');
  check('postgres-replica streams from the primary over slot replica1 (hot standby)', repl.split('\n').includes('replica1:true:streaming') && recovery === 't', `primary: ${repl}; replica in recovery: ${recovery}`);
}

async function loadAndVerify() {
  const runId = `c${randomBytes(3).toString('hex')}`;
  step(`load generator in a container on the compose network: 2,000 readings (200 req/s for 10 s) to http://nginx, then --verify against the primary`);
  const lg = compose(
    ['run', '--rm', '--no-deps', '-T', 'migrate', 'loadgen', 'run', '--url', 'http://nginx:80', '--rate', '200', '--duration', '10', '--batch-share', '0', '--resend', '0', '--run-id', runId, '--seed', '42', '--verify', '--drain-timeout', '120', '--json', '--quiet'],
    { timeout: 300_000 },
  );
  writeFileSync(join(LOGS, 'loadgen.json'), lg.stdout);
  let summary;
  try {
    summary = JSON.parse(lg.stdout.slice(lg.stdout.indexOf('{')));
  } catch {
    check('load generator ran', false, `exit ${lg.code}: ${(lg.stderr || lg.stdout).trim().slice(-800)}`);
    return;
  }
  const r = summary.readings;
  const v = summary.verify;
  info(`requests ${summary.requests}: ${JSON.stringify(summary.byStatus)}; readings acknowledged ${r.acknowledged}, rejected ${r.rejected} (invalid sent ${r.invalidSent}), indeterminate ${r.indeterminate}; p99 ${summary.latencyMs.p99.toFixed(1)} ms`);
  info(`verify: stored ${v.stored}, lost ${v.lost.length}, duplicated ${v.duplicated.length}, value mismatches ${v.valueMismatch.length}, rejected but stored ${v.rejectedButStored.length}, rows nobody sent ${v.unexpected.length}, drained in ${v.drainMs} ms`);
  check('2,000 readings sent through nginx; every valid one acknowledged (202), every invalid one rejected', summary.requests === 2000 && r.indeterminate === 0 && r.invalidAcknowledged === 0 && r.acknowledged + r.rejected === 2000 && r.rejected === r.invalidSent, `acknowledged ${r.acknowledged}, rejected ${r.rejected}, invalid sent ${r.invalidSent}`);
  check('loadgen --verify: every acknowledged reading stored exactly once on the primary, nothing else', lg.code === 0 && v.ok && v.stored === r.acknowledged, `exit ${lg.code}, stored ${v.stored} of ${r.acknowledged}`);

  // The replica has the same rows (streaming may lag a moment).
  let onReplica = '';
  for (let i = 0; i < 30; i++) {
    onReplica = psql('postgres-replica', `SELECT count(*) || '/' || count(DISTINCT id) FROM readings WHERE meter_id LIKE 'lg-${runId}-%'`);
    if (onReplica === `${v.stored}/${v.stored}`) break;
    await sleep(1_000);
  }
  check('the replica holds every stored reading (count and distinct ids)', onReplica === `${v.stored}/${v.stored}`, `replica ${onReplica}, primary ${v.stored}`);

  // And the API reads them from the replica: meter history through nginx.
  const sample = psql('postgres', `SELECT meter_id || ' ' || id FROM readings WHERE meter_id LIKE 'lg-${runId}-%' ORDER BY id LIMIT 10`).split('\n').filter(Boolean);
  let good = 0;
  const problems = [];
  for (const line of sample) {
    const [meterId, id] = line.split(' ');
    const res = await httpRequest('GET', `/v1/meters/${meterId}/readings?history=true`);
    if (res.status === 200 && res.headers['x-read-from'] === 'replica' && res.body.includes(id)) good++;
    else problems.push(`${meterId}: ${res.status} ${res.headers['x-read-from'] ?? ''}`);
  }
  check('meter history through nginx is served from the replica and contains the readings', sample.length === 10 && good === sample.length, `${good}/${sample.length}${problems.length ? `; ${problems.slice(0, 3).join(', ')}` : ''}`);

  // Every API replica took part in the load generator's traffic (its own metrics).
  const apis = containers().filter((c) => c.service === 'api' && c.running);
  const accepted = apis.map((c) => {
    const m = /^http_requests_total\{[^}]*route="\/v1\/readings"[^}]*method="POST"[^}]*status="202"[^}]*\} (\d+)/m.exec(apiMetrics(c));
    return { name: c.hostname, n: m ? Number(m[1]) : 0 };
  });
  check('all three API replicas served the load generator (202s in each one\'s /metrics)', apis.length === 3 && accepted.every((a) => a.n > 0), accepted.map((a) => `${a.name}: ${a.n}`).join(', '));

  // And through the published port, X-Served-By names all three containers.
  const seen = {};
  for (let i = 0; i < 60; i++) {
    const res = await httpRequest('GET', '/health/live');
    const by = res.headers['x-served-by'];
    if (by) seen[by] = (seen[by] ?? 0) + 1;
  }
  const names = apis.map((c) => c.hostname).sort();
  check('X-Served-By through nginx names all three API containers', names.every((n) => seen[n] > 0) && Object.keys(seen).every((n) => names.includes(n)), JSON.stringify(seen));
}

async function scaleLive() {
  step('scaling to api=5 live under a steady 40 requests/s: docker-compose up -d --no-recreate --scale api=5 --scale writer=2');
  const before = new Set(containers().filter((c) => c.service === 'api').map((c) => c.id));
  const load = steadyLoad(40, 'scale');
  await sleep(3_000);
  const up = await composeLogged(['up', '-d', '--no-recreate', '--scale', 'api=5', '--scale', 'writer=2'], 'compose-scale.log', 10 * 60_000);
  check('up -d --scale api=5 exits 0', up.code === 0, up.code === 0 ? '' : tail(up.logFile, 20));
  const healthy = await waitHealthy({ api: 5 }, 180_000);
  check('five API replicas healthy', healthy.ok, `${healthy.summary} after ${(healthy.ms / 1000).toFixed(0)} s`);
  const healthyAt = Date.now();
  await sleep(8_000);
  const records = await load.stop();
  const fresh = containers().filter((c) => c.service === 'api' && !before.has(c.id));
  const { bad, text } = describeFailures(records);
  info(latencyText(records));
  check('no request failed while scaling (every one 202)', records.length > 0 && bad.length === 0, text);
  const after = servedByCounts(records.filter((r) => r.sentAt >= healthyAt));
  check('the two new replicas get traffic without an nginx restart', fresh.length === 2 && fresh.every((c) => after[c.hostname] > 0), `new ${fresh.map((c) => `${c.hostname}: ${after[c.hostname] ?? 0}`).join(', ')}; all since healthy ${JSON.stringify(after)}`);
}

async function stopOneReplica() {
  const apis = containers().filter((c) => c.service === 'api' && c.running).sort((a, b) => a.number - b.number);
  const victim = apis[0];
  step(`stopping one API container (${victim.hostname}, api #${victim.number}) under a steady 40 requests/s`);
  const load = steadyLoad(40, 'stop');
  await sleep(3_000);
  const stop = docker(['stop', '-t', '15', victim.id]);
  const stoppedAt = Date.now();
  check('docker stop of one API container', stop.code === 0, stop.stderr.trim());
  await sleep(8_000);
  const records = await load.stop();
  const { bad, text } = describeFailures(records);
  // Requests that nginx sent to the stopped replica's address in the second after it exited
  // wait for the connect timeout (1 s) before going to another replica: slower, not failed.
  info(latencyText(records));
  check('no request failed while a replica stopped (every one 202)', records.length > 0 && bad.length === 0, text);
  const afterStop = records.filter((r) => r.sentAt >= stoppedAt);
  const counts = servedByCounts(afterStop);
  check(
    'traffic continues on the other replicas, none to the stopped one',
    afterStop.length > 100 && afterStop.every((r) => r.status === 202) && !counts[victim.hostname] && Object.keys(counts).length >= 2,
    `${afterStop.length} requests after the stop, ${JSON.stringify(counts)}`,
  );
}

async function down() {
  if (!stackUp || KEEP) return;
  step('docker-compose down -v');
  const d = await composeLogged(['down', '-v', '--remove-orphans'], 'compose-down.log', 5 * 60_000);
  stackUp = false;
  const left = containers();
  const volumes = docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`]).stdout.split('\n').filter(Boolean);
  check('down -v removes every container and volume of the project', d.code === 0 && left.length === 0 && volumes.length === 0, `${left.length} containers, ${volumes.length} volumes left`);
  // Untagged build stages of earlier runs pile up in the cache as the sources change.
  docker(['image', 'prune', '-f', '--filter', 'until=24h']);
}

function saveLogs() {
  const r = compose(['logs', '--no-color', '--tail=200']);
  writeFileSync(join(LOGS, 'compose-services.log'), r.stdout + r.stderr);
  info(`service logs saved in ${join(LOGS, 'compose-services.log')}`);
}

// ---------------------------------------------------------------------------------------------

// Ctrl-C or a CI timeout: take the stack and the engine down before leaving.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.log(`\n${signal}: stopping the stack and the engine`);
    void (async () => {
      if (stackUp && !KEEP) compose(['down', '-v', '--remove-orphans']);
      await stopEngine();
      process.exit(130);
    })();
  });
}

let fatal;
try {
  mkdirSync(LOGS, { recursive: true });
  ensureDependencies();
  ensureTools();
  validateFiles();
  step('Docker engine');
  await ensureEngine();
  step('images (official when they can be pulled, otherwise local stand-ins)');
  await ensureImages();
  await upStack();
  await loadAndVerify();
  await scaleLive();
  await stopOneReplica();
} catch (err) {
  fatal = err;
  check('the run completed', false, err instanceof Error ? err.message : String(err));
} finally {
  if (stackUp) {
    try {
      if (fatal || results.some((r) => !r.ok)) saveLogs();
      await down();
    } catch (err) {
      check('cleanup', false, String(err));
    }
  }
  await stopEngine();
}

if (images.length) printImages();
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`\ntest:compose took ${elapsed()}${KEEP ? ` (stack left running: project ${PROJECT}, DOCKER_HOST=${engineEnv.DOCKER_HOST})` : ''}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
