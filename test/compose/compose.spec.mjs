// The compose tier: docker-compose.postgres.yml for real, on the engine and images that
// global-setup.mjs prepared. It checks what the Docker Compose setup promises:
//   - both compose files validate (`docker-compose config -q` and dclint's compose-spec schema);
//   - `up -d --build --scale api=3 --scale writer=2` comes up healthy (migrate ran once, exit 0);
//   - 2,000 readings sent through nginx by the load generator: every acknowledged one stored
//     exactly once (loadgen --verify against the primary) and readable from the replica;
//   - all three API replicas served traffic;
//   - scaling to api=5 live: the new replicas get traffic, no request fails;
//   - one API container stopped under load: traffic continues, no request fails;
//   - `down -v` leaves nothing behind.
// The checks run in order on one stack. Each phase does its work in beforeAll and keeps what went
// wrong, so a broken phase fails its own checks and the ones after it (never skips them).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { root } from '../../scripts/lib/setup.mjs';
import { APP_IMAGE, COMPOSE_FILES, KEEP, LOGS, PROJECT, elapsed, host } from './settings.mjs';

let nginxPort = 0;
const h = host(() => nginxPort);
Object.assign(h.engineEnv, inject('composeEngine'));
const images = inject('composeImages');
const { compose, composeLogged, docker, dockerMust, run, tail } = h;

let stackUp = false;
let anyFailed = false;
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    anyFailed = true;
  });
});

/** Passes with its detail printed, or fails with it. */
function holds(ok, detail = '') {
  if (!ok) throw new Error(detail || 'does not hold');
  if (detail) console.log(`      ${detail}`);
}
/** Runs a phase's work; what it throws is kept for the phase's checks to report. */
async function attempt(work) {
  try {
    return { value: await work() };
  } catch (err) {
    return { error: err instanceof Error ? err : new Error(String(err)) };
  }
}
function needStack() {
  if (!stackUp) throw new Error('the stack is not up (an earlier check failed)');
}
function result(phase) {
  if (!phase) throw new Error('the phase did not run');
  if (phase.error) throw phase.error;
  return phase.value;
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

async function waitHealthy(expected, timeoutMs) {
  const started = Date.now();
  let last = '';
  while (Date.now() - started < timeoutMs) {
    const cs = containers();
    const summary = Object.entries(expected).map(([svc, n]) => {
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

/** The tests' client key, issued with the image's `clients create` once the stack is up. */
let apiKey = '';
/** The certificate nginx made in its container (10-meter-intake-tls.sh), trusted by these requests. */
let nginxCert = '';

function readNginxCert() {
  const r = compose(['exec', '-T', 'nginx', 'cat', '/etc/nginx/tls/cert.pem']);
  if (r.code !== 0 || !r.stdout.includes('BEGIN CERTIFICATE')) throw new Error(`no certificate in the nginx container (exit ${r.code}): ${r.stderr.trim().slice(-300)}`);
  nginxCert = r.stdout;
}

function issueKey() {
  const r = compose(['run', '--rm', '--no-deps', '-T', 'migrate', 'clients', 'create', '--name', `compose-tests-${randomBytes(3).toString('hex')}`, '--scopes', 'submit,read:all', '--json'], { timeout: 120_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    apiKey = JSON.parse(line).key;
  } catch {
    throw new Error(`clients create printed no key (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-500)}`);
  }
}

/** Through nginx over HTTPS (its own certificate trusted, nothing else), as the tests' client (its key unless `headers` sets Authorization). */
function httpRequest(method, path, body, headers = {}, timeoutMs = 15_000) {
  const withKey = { authorization: `Bearer ${apiKey}`, ...headers };
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: nginxPort, method, path, agent: false, timeout: timeoutMs, ca: nginxCert, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...withKey } : withKey },
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
  const runId = randomBytes(3).toString('hex');
  const records = [];
  const pending = new Set();
  let n = 0;
  const timer = setInterval(() => {
    const i = n++;
    const sentAt = Date.now();
    const body = JSON.stringify({ meterId: `ct-${label}-${runId}-${i}`, readAt: new Date().toISOString(), values: { t1: 1000 + i }, source: 'ami' });
    const p = httpRequest('POST', '/v1/readings', body, { 'idempotency-key': `ct-${label}-${runId}-${i}` }).then((res) => {
      records.push({ sentAt, doneAt: Date.now(), status: res.status, servedBy: res.headers['x-served-by'], error: res.status === 202 ? undefined : res.body.slice(0, 200) });
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, 1000 / rate);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
      return records;
    },
  };
}

/**
 * `change()` under a steady 40 requests/s: 3 s of load before it, 8 s after it. Returns what
 * `change` returned, every request's record and when the change was done (`changedAt`).
 */
async function underSteadyLoad(label, change) {
  const load = steadyLoad(40, label);
  try {
    await sleep(3_000);
    const changed = await change();
    const changedAt = Date.now();
    await sleep(8_000);
    const records = await load.stop();
    console.log(`      ${latencyText(records)}`);
    return { ...changed, changedAt, records };
  } finally {
    await load.stop();
  }
}

function everyRequestAccepted(records) {
  const bad = records.filter((r) => r.status !== 202);
  const byStatus = {};
  for (const r of bad) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  holds(records.length > 0 && bad.length === 0, `${records.length} requests, ${bad.length} not 202${bad.length ? `: ${JSON.stringify(byStatus)}, first: ${bad[0].error}` : ''}`);
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

describe('the compose files validate', () => {
  const dclint = join(root, 'node_modules', '.bin', 'dclint');
  // Without any variable set (the defaults), then with .env.example's values.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NGINX_|POSTGRES_|REPLICATION_|COCKROACH_|MI_IMAGE|REDIS_IMAGE|RATE_LIMIT|TRUST_PROXY|SERVED_BY_HEADER)/.test(k)));
  for (const file of COMPOSE_FILES) {
    it(`${file}: docker-compose config -q`, () => {
      const r = run('docker-compose', ['-f', file, 'config', '-q'], { env: clean });
      holds(r.code === 0, r.stderr.trim().slice(0, 500));
    });
    it(`${file}: docker-compose --env-file .env.example config -q`, () => {
      const r = run('docker-compose', ['--env-file', '.env.example', '-f', file, 'config', '-q'], { env: clean });
      holds(r.code === 0, r.stderr.trim().slice(0, 500));
    });
    it(`${file}: dclint (compose-spec schema and rules)`, () => {
      const r = run(process.execPath, [dclint, '--color', 'false', file]);
      holds(r.code === 0, (r.stdout + r.stderr).trim().slice(0, 1500));
    });
  }
});

describe(`up -d --build --scale api=3 --scale writer=2 (project ${PROJECT}, build output in ${join(LOGS, 'compose-up.log')})`, () => {
  let up;
  let healthy;
  beforeAll(async () => {
    nginxPort = await freePort();
    console.log(`[compose +${elapsed()}] nginx on 127.0.0.1:${nginxPort}; test settings for the services: RATE_LIMIT=10000000 (every test client is one address), SHED_EVENT_LOOP_DELAY_MS=0 (no 503 on a busy machine)`);
    compose(['down', '-v', '--remove-orphans']); // leftovers of an interrupted run
    stackUp = true;
    up = await composeLogged(['up', '-d', '--build', '--scale', 'api=3', '--scale', 'writer=2'], 'compose-up.log', 20 * 60_000);
    if (up.code === 0) healthy = await waitHealthy({ nginx: 1, api: 3, writer: 2, redis: 1, postgres: 1, 'postgres-replica': 1 }, 240_000);
    if (healthy?.ok) {
      readNginxCert();
      issueKey();
    }
  });

  it('up -d --build --scale api=3 --scale writer=2 exits 0', () => {
    holds(up?.code === 0, up ? tail(up.logFile, 30) : 'did not run');
  });
  it('every service healthy (nginx 1, api 3, writer 2, redis 1, postgres 1, postgres-replica 1)', () => {
    holds(healthy?.ok === true, healthy ? healthy.summary : 'compose up failed');
  });
  it('nginx serves HTTPS with a certificate it made, which a client must trust', async () => {
    needStack();
    const live = await httpRequest('GET', '/health/live');
    holds(live.status === 200, `${live.status} ${live.body.slice(0, 100)}`);
    const untrusted = await new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: nginxPort, path: '/health/live', agent: false, timeout: 10_000 }, (res) => resolve(`answered ${res.statusCode}`));
      req.on('error', (err) => resolve(err.message));
      req.end();
    });
    holds(/self[- ]signed|unable to verify|certificate/i.test(String(untrusted)), `without trusting it: ${untrusted}`);
  });
  it('clients create in the image issued a key; without it nginx passes a 401 from the API', async () => {
    needStack();
    holds(/^mik_[A-Za-z0-9_-]{43}$/.test(apiKey), `key ${apiKey.slice(0, 8)}…`);
    const anonymous = await httpRequest('POST', '/v1/readings', '{}', { authorization: '' });
    holds(anonymous.status === 401 && JSON.parse(anonymous.body).error.code === 'unauthenticated', `${anonymous.status} ${anonymous.body.slice(0, 200)}`);
  });
  it('migrate ran once and exited 0', () => {
    needStack();
    const migrate = containers().filter((c) => c.service === 'migrate');
    holds(migrate.length === 1 && !migrate[0].running && migrate[0].exitCode === 0, migrate.map((c) => `exit ${c.exitCode}`).join(', ') || 'no migrate container');
  });
  it('only nginx publishes a port', () => {
    needStack();
    const published = containers().filter((c) => c.ports.length > 0);
    holds(published.length === 1 && published[0].service === 'nginx', published.map((c) => `${c.service}: ${c.ports.join(' ')}`).join('; '));
  });
  it('app image runs as the non-root user node and has a HEALTHCHECK', () => {
    const image = JSON.parse(dockerMust(['image', 'inspect', APP_IMAGE]))[0];
    console.log(`      app image ${APP_IMAGE}: ${Math.round(image.Size / 1e6)} MB`);
    holds(image.Config.User === 'node' && Array.isArray(image.Config.Healthcheck?.Test), `user ${image.Config.User}, healthcheck ${JSON.stringify(image.Config.Healthcheck?.Test)}`);
  });
  it('app image: no secrets baked in; CA trust only from the node stand-in, never the Dockerfile', () => {
    const image = JSON.parse(dockerMust(['image', 'inspect', APP_IMAGE]))[0];
    const env = image.Config.Env.join(' ');
    const nodeStandIn = images.some((i) => i.source === 'stand-in' && i.name.startsWith('node:'));
    const caInImage = env.includes('NODE_EXTRA_CA_CERTS');
    const caInDockerfile = /NODE_EXTRA_CA_CERTS|ca-certificates/.test(readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/^#.*$/gm, ''));
    holds(!/PASSWORD|DATABASE_URL|REDIS_URL/.test(env) && !caInDockerfile && (!caInImage || nodeStandIn), caInImage ? 'NODE_EXTRA_CA_CERTS is inherited from the node STAND-IN base image' : `env: ${env.slice(0, 300)}`);
  });
  it('redis: appendonly yes, maxmemory-policy noeviction', () => {
    needStack();
    const aof = compose(['exec', '-T', 'redis', 'redis-cli', 'config', 'get', 'appendonly']).stdout;
    const policy = compose(['exec', '-T', 'redis', 'redis-cli', 'config', 'get', 'maxmemory-policy']).stdout;
    holds(/appendonly\s+yes/.test(aof) && /noeviction/.test(policy), `${aof.replace(/\s+/g, ' ').trim()}; ${policy.replace(/\s+/g, ' ').trim()}`);
  });
  it('postgres-replica streams from the primary over slot replica1 (hot standby)', () => {
    needStack();
    const repl = psql('postgres', "SELECT s.slot_name || ':' || s.active || ':' || coalesce(r.state, '-') FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid");
    const recovery = psql('postgres-replica', 'SELECT pg_is_in_recovery()');
    holds(repl.split('\n').includes('replica1:true:streaming') && recovery === 't', `primary: ${repl}; replica in recovery: ${recovery}`);
  });
});

describe('the load generator in a container on the compose network: 2,000 readings (200 req/s for 10 s) to https://nginx, then --verify against the primary', () => {
  const runId = `c${randomBytes(3).toString('hex')}`;
  let load;
  beforeAll(async () => {
    load = await attempt(() => {
      needStack();
      const lg = compose(
        ['run', '--rm', '--no-deps', '-T', 'migrate', 'loadgen', 'run', '--url', 'https://nginx:443', '--ca', '/tls/cert.pem', '--api-key', apiKey, '--rate', '200', '--duration', '10', '--batch-share', '0', '--resend', '0', '--run-id', runId, '--seed', '42', '--verify', '--drain-timeout', '120', '--json', '--quiet'],
        { timeout: 300_000 },
      );
      writeFileSync(join(LOGS, 'loadgen.json'), lg.stdout);
      let summary;
      try {
        summary = JSON.parse(lg.stdout.slice(lg.stdout.indexOf('{')));
      } catch {
        throw new Error(`the load generator printed no summary (exit ${lg.code}): ${(lg.stderr || lg.stdout).trim().slice(-800)}`);
      }
      const r = summary.readings;
      const v = summary.verify;
      console.log(`      requests ${summary.requests}: ${JSON.stringify(summary.byStatus)}; readings acknowledged ${r.acknowledged}, rejected ${r.rejected} (invalid sent ${r.invalidSent}), indeterminate ${r.indeterminate}; p99 ${summary.latencyMs.p99.toFixed(1)} ms`);
      console.log(`      verify: stored ${v.stored}, lost ${v.lost.length}, duplicated ${v.duplicated.length}, value mismatches ${v.valueMismatch.length}, rejected but stored ${v.rejectedButStored.length}, rows nobody sent ${v.unexpected.length}, drained in ${v.drainMs} ms`);
      return { code: lg.code, summary };
    });
  });

  it('2,000 readings sent through nginx; every valid one acknowledged (202), every invalid one rejected', () => {
    const { summary } = result(load);
    const r = summary.readings;
    holds(summary.requests === 2000 && r.indeterminate === 0 && r.invalidAcknowledged === 0 && r.acknowledged + r.rejected === 2000 && r.rejected === r.invalidSent, `acknowledged ${r.acknowledged}, rejected ${r.rejected}, invalid sent ${r.invalidSent}`);
  });
  it('loadgen --verify: every acknowledged reading stored exactly once on the primary, nothing else', () => {
    const { code, summary } = result(load);
    holds(code === 0 && summary.verify.ok && summary.verify.stored === summary.readings.acknowledged, `exit ${code}, stored ${summary.verify.stored} of ${summary.readings.acknowledged}`);
  });
  it('the replica holds every stored reading (count and distinct ids)', async () => {
    const stored = result(load).summary.verify.stored;
    // Streaming may lag a moment.
    let onReplica = '';
    for (let i = 0; i < 30; i++) {
      onReplica = psql('postgres-replica', `SELECT count(*) || '/' || count(DISTINCT id) FROM readings WHERE meter_id LIKE 'lg-${runId}-%'`);
      if (onReplica === `${stored}/${stored}`) break;
      await sleep(1_000);
    }
    holds(onReplica === `${stored}/${stored}`, `replica ${onReplica}, primary ${stored}`);
  });
  it('meter history through nginx is served from the replica and contains the readings', async () => {
    result(load);
    const sample = psql('postgres', `SELECT meter_id || ' ' || id FROM readings WHERE meter_id LIKE 'lg-${runId}-%' ORDER BY id LIMIT 10`).split('\n').filter(Boolean);
    let good = 0;
    const problems = [];
    for (const line of sample) {
      const [meterId, id] = line.split(' ');
      const res = await httpRequest('GET', `/v1/meters/${meterId}/readings?history=true`);
      if (res.status === 200 && res.headers['x-read-from'] === 'replica' && res.body.includes(id)) good++;
      else problems.push(`${meterId}: ${res.status} ${res.headers['x-read-from'] ?? ''}`);
    }
    holds(sample.length === 10 && good === sample.length, `${good}/${sample.length}${problems.length ? `; ${problems.slice(0, 3).join(', ')}` : ''}`);
  });
  it("all three API replicas served the load generator (202s in each one's /metrics)", () => {
    result(load);
    const apis = containers().filter((c) => c.service === 'api' && c.running);
    const accepted = apis.map((c) => {
      const m = /^http_requests_total\{[^}]*route="\/v1\/readings"[^}]*method="POST"[^}]*status="202"[^}]*\} (\d+)/m.exec(apiMetrics(c));
      return { name: c.hostname, n: m ? Number(m[1]) : 0 };
    });
    holds(apis.length === 3 && accepted.every((a) => a.n > 0), accepted.map((a) => `${a.name}: ${a.n}`).join(', '));
  });
  it('X-Served-By through nginx names all three API containers', async () => {
    needStack();
    const apis = containers().filter((c) => c.service === 'api' && c.running);
    const seen = {};
    for (let i = 0; i < 60; i++) {
      const res = await httpRequest('GET', '/health/live');
      const by = res.headers['x-served-by'];
      if (by) seen[by] = (seen[by] ?? 0) + 1;
    }
    const names = apis.map((c) => c.hostname).sort();
    holds(names.length === 3 && names.every((n) => seen[n] > 0) && Object.keys(seen).every((n) => names.includes(n)), JSON.stringify(seen));
  });
});

describe('scaling to api=5 live under a steady 40 requests/s: docker-compose up -d --no-recreate --scale api=5 --scale writer=2', () => {
  let scale;
  beforeAll(async () => {
    scale = await attempt(async () => {
      needStack();
      const before = new Set(containers().filter((c) => c.service === 'api').map((c) => c.id));
      const run = await underSteadyLoad('scale', async () => {
        const up = await composeLogged(['up', '-d', '--no-recreate', '--scale', 'api=5', '--scale', 'writer=2'], 'compose-scale.log', 10 * 60_000);
        const healthy = up.code === 0 ? await waitHealthy({ api: 5 }, 180_000) : undefined;
        return { up, healthy };
      });
      return { ...run, fresh: containers().filter((c) => c.service === 'api' && !before.has(c.id)) };
    });
  });

  it('up -d --scale api=5 exits 0', () => {
    const { up } = result(scale);
    holds(up.code === 0, up.code === 0 ? '' : tail(up.logFile, 20));
  });
  it('five API replicas healthy', () => {
    const { healthy } = result(scale);
    holds(healthy?.ok === true, healthy ? `${healthy.summary} after ${(healthy.ms / 1000).toFixed(0)} s` : 'scale-up failed');
  });
  it('no request failed while scaling (every one 202)', () => everyRequestAccepted(result(scale).records));
  it('the two new replicas get traffic through the running nginx', () => {
    const { records, changedAt, fresh } = result(scale);
    const after = servedByCounts(records.filter((r) => r.sentAt >= changedAt));
    holds(fresh.length === 2 && fresh.every((c) => after[c.hostname] > 0), `new ${fresh.map((c) => `${c.hostname}: ${after[c.hostname] ?? 0}`).join(', ')}; all since healthy ${JSON.stringify(after)}`);
  });
});

describe('one API container stopped under a steady 40 requests/s', () => {
  let stop;
  beforeAll(async () => {
    stop = await attempt(async () => {
      needStack();
      const victim = containers().filter((c) => c.service === 'api' && c.running).sort((a, b) => a.number - b.number)[0];
      if (!victim) throw new Error('no API container is running');
      console.log(`[compose +${elapsed()}] stopping ${victim.hostname} (api #${victim.number})`);
      // Requests that nginx sent to the stopped replica's address in the second after it exited
      // wait for the connect timeout (1 s) before going to another replica: slower, not failed.
      const run = await underSteadyLoad('stop', () => ({ stopped: docker(['stop', '-t', '15', victim.id]) }));
      return { ...run, victim };
    });
  });

  it('docker stop of one API container', () => {
    const { stopped } = result(stop);
    holds(stopped.code === 0, stopped.stderr.trim());
  });
  it('no request failed while a replica stopped (every one 202)', () => everyRequestAccepted(result(stop).records));
  it('traffic continues on the other replicas, none to the stopped one', () => {
    const { records, changedAt, victim } = result(stop);
    const afterStop = records.filter((r) => r.sentAt >= changedAt);
    const counts = servedByCounts(afterStop);
    holds(afterStop.length > 100 && afterStop.every((r) => r.status === 202) && !counts[victim.hostname] && Object.keys(counts).length >= 2, `${afterStop.length} requests after the stop, ${JSON.stringify(counts)}`);
  });
});

describe('docker-compose down -v', () => {
  it.skipIf(KEEP)('down -v removes every container and volume of the project', async () => {
    needStack();
    if (anyFailed) saveLogs();
    const d = await composeLogged(['down', '-v', '--remove-orphans'], 'compose-down.log', 5 * 60_000);
    stackUp = false;
    const left = containers();
    const volumes = docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`]).stdout.split('\n').filter(Boolean);
    expect({ exit: d.code, containers: left.length, volumes: volumes.length }).toEqual({ exit: 0, containers: 0, volumes: 0 });
    console.log(`      ${left.length} containers, ${volumes.length} volumes left`);
    // Untagged build stages of earlier runs pile up in the cache as the sources change.
    docker(['image', 'prune', '-f', '--filter', 'until=24h']);
  });
});

afterAll(() => {
  // A check failed before the down (or COMPOSE_TEST_KEEP): keep the services' logs for the post-mortem.
  if (stackUp && anyFailed) saveLogs();
  if (KEEP) console.log(`stack left running: project ${PROJECT}, DOCKER_HOST=${h.engineEnv.DOCKER_HOST}`);
});

function saveLogs() {
  const r = compose(['logs', '--no-color', '--tail=200']);
  writeFileSync(join(LOGS, 'compose-services.log'), r.stdout + r.stderr);
  console.log(`      service logs saved in ${join(LOGS, 'compose-services.log')}`);
}
