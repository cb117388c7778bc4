// `npm start`: the meter-intake cluster on one machine, under one supervisor.
//   PostgreSQL primary + streaming hot-standby replica and Redis (AOF, noeviction) under .data/,
//   migrations, N API replicas (default 2), M writers (default 1), nginx on https://127.0.0.1:8080
//   (NGINX_TLS=on by default, with a self-signed certificate unless NGINX_TLS_CERT/KEY are set).
//   With --db cockroach: a local three-node CockroachDB cluster instead of PostgreSQL (needs a
//   `cockroach` binary on PATH or COCKROACH_BIN; never falls back to PostgreSQL).
// `npm run cluster -- status` and `npm run cluster -- scale api=N writers=M` talk to it over a
// Unix socket in the data folder. Ctrl-C / SIGTERM / SIGHUP: nginx stops accepting and finishes
// what it has, the APIs drain and the writers flush, then Redis and PostgreSQL shut down cleanly.
// If this process dies without that (SIGKILL, a crash), its guardian (cluster/guardian.mjs) does
// the same stop; a later `npm start` stops whatever is still left before starting again.
// This file is the supervision core (start-up order, restarts, scaling, the stop). Beside it in
// cluster/: cli.mjs (options), supervisor-lock.mjs (one supervisor per data folder),
// backends.mjs (PostgreSQL or CockroachDB, with Redis), control-server.mjs (the control socket),
// supervised.mjs (one replica or writer), nginx.mjs, process-table.mjs, stop-cluster.mjs (the
// stop the guardian shares), guardian.mjs.
// Everything imported statically here uses Node built-ins only: on a fresh clone this runs
// before the npm dependencies are installed.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCockroachBackend, startPostgresBackend } from './cluster/backends.mjs';
import { startOptions } from './cluster/cli.mjs';
import { createControlServer } from './cluster/control-server.mjs';
import { NginxProcess, nginxSettings } from './cluster/nginx.mjs';
import { ensureCertificate, fingerprintOf, httpsStatus } from './cluster/tls.mjs';
import { identity, removeTable, writeTable } from './cluster/process-table.mjs';
import { clearLeftovers, stopCluster } from './cluster/stop-cluster.mjs';
import { Supervised } from './cluster/supervised.mjs';
import { takeSupervisorLock } from './cluster/supervisor-lock.mjs';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, rel, root } from './lib/setup.mjs';
import { freePort, markPortsTaken } from './lib/stack.mjs';
import { STOP_DEADLINE_MS, STOP_DEADLINES_MS } from './lib/stop-deadlines.mjs';

const { fresh, useCockroach, cockroachBin, wanted, dataDir, ports } = startOptions();

const log = (message) => process.stderr.write(`[meter-intake ${new Date().toISOString()}] ${message}\n`);
const logsDir = join(dataDir, 'logs');
const socketPath = join(dataDir, 'supervisor.sock');
function portFree(port) {
  return new Promise((resolvePort) => {
    const srv = createServer();
    srv.once('error', () => resolvePort(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolvePort(true)));
  });
}

ensureDependencies();
ensureSystemPackages(useCockroach ? ['redis-server', 'nginx', 'openssl'] : ['redis-server', 'postgres', 'nginx', 'openssl']);
ensureBuilt();

await takeSupervisorLock(dataDir);

// A cluster of an earlier run on this data folder: refuse if its supervisor lives; otherwise stop
// what it left (cleanly: the writers flush, PostgreSQL shuts down fast) and start afresh.
try {
  const earlier = await clearLeftovers(dataDir, log);
  if (earlier.running) {
    console.error(`meter-intake is already running on this data folder (supervisor pid ${earlier.running.supervisor.pid}, ${earlier.running.url}). See npm run cluster -- status; stop it with Ctrl-C in its terminal or kill ${earlier.running.supervisor.pid}.`);
    process.exit(1);
  }
} catch (err) {
  console.error(err.message);
  process.exit(1);
}

for (const [name, port] of Object.entries(ports)) {
  if (!(await portFree(port))) {
    console.error(`port ${port} (${name}) is in use, and not by a cluster of this data folder (${rel(dataDir)}): another program, or meter-intake with another --data-dir. Stop it, or choose other ports (--port, ${useCockroach ? '' : 'PG_PORT, PG_REPLICA_PORT, '}REDIS_PORT).`);
    process.exit(1);
  }
}
if (fresh) {
  log(`--fresh: removing ${rel(dataDir)}`);
  rmSync(dataDir, { recursive: true, force: true });
}
mkdirSync(logsDir, { recursive: true });
rmSync(socketPath, { force: true });

// ---------------------------------------------------------------------------------------------
// State. Declared before anything starts: a stop may be requested at any point from here on.

const apis = [];
const writers = [];
/** Parts being scaled down: out of nginx and the lists, still running until they have drained. */
const retiring = new Set();
/** Replicas stopped by someone else: out of nginx while they drain and restart, still in `apis`. */
const outOfRotation = new Set();
/** Replicas being added: in `apis`, not in nginx until they are ready. */
const joining = new Set();
const inRotation = () => apis.filter((a) => !outOfRotation.has(a) && !joining.has(a));
/** What nginx gets: the replicas in rotation, or, rather than none at all, every ready one. */
const upstreamList = () => {
  const list = inRotation();
  return list.length > 0 ? list : apis.filter((a) => !joining.has(a));
};
let nginxUpdates = Promise.resolve();
/** One nginx reload at a time, always with the current list. */
function reloadNginx() {
  const update = nginxUpdates.then(() => nginx.setUpstreams(upstreamList()));
  nginxUpdates = update.catch(() => undefined);
  return update;
}
let nextApi = 1;
let nextWriter = 1;
// A part's port is free when chosen but bound only when the part listens: freePort skips every
// port it gave out before, and these fixed ones.
markPortsTaken(Object.values(ports));
const edge = nginxSettings();
if (edge.tls.httpPort !== undefined) {
  if (edge.tls.httpPort === ports.nginx) throw new Error(`NGINX_HTTP_PORT (${edge.tls.httpPort}) must differ from the HTTPS port`);
  markPortsTaken([edge.tls.httpPort]);
}
// TLS at the edge (NGINX_TLS=on): the configured certificate, or a self-signed one made once in the data folder.
const certificate = edge.tls.enabled ? ensureCertificate(dataDir, edge.tls) : undefined;
if (certificate) Object.assign(edge.tls, { cert: certificate.cert, key: certificate.key });
const scheme = certificate ? 'https' : 'http';
const nginx = new NginxProcess(join(dataDir, 'nginx'), ports.nginx, edge);
/**
 * The data services: PostgreSQL primary + replica and Redis (startStack, shared with the tests),
 * or a three-node CockroachDB cluster and Redis. `database` hides the difference from the rest
 * of the supervisor: the environment a part gets, the status line, the watchdog and the stop.
 */
let stack;
let database;
/** CockroachDB nodes from the moment they are spawned, before the cluster is up (for the table). */
const cockroachSpawned = [];
let guardian;
let control;
let watchdog;
let watching = false;
let shuttingDown = false;
let shutdownPromise;
let startupDone = false;
/** starting, ready or stopping: what the process table says and what the control socket allows. */
const clusterState = () => (shuttingDown ? 'stopping' : startupDone ? 'ready' : 'starting');
let stopRequested;
let wakeStartup;
const stopRequestedDuringStartup = new Promise((r) => (wakeStartup = r));
/**
 * Parts held down on purpose (`npm run cluster -- stop postgres`), for outage drills and the
 * benchmark: the watchdog leaves them down until `start`.
 */
const held = new Set();
const deadlineOf = (part) => STOP_DEADLINES_MS[part.name.startsWith('api-') ? 'api' : 'writer'];

// Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all stop the cluster in order. During start-up
// the stop begins as soon as the step in progress (a server start, a migration) has ended, so that
// nothing is left half-started behind the stop.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (startupDone) return void shutdown(signal);
    if (!stopRequested) log(`${signal}: stopping as soon as the start-up step in progress has ended`);
    stopRequested ??= signal;
    wakeStartup();
  });
}
/** Between start-up steps: a requested stop runs now (shutdown ends the process). */
async function checkpoint() {
  if (stopRequested) await shutdown(stopRequested);
}

/**
 * The guardian, started before any other process: it stops the cluster if this supervisor dies
 * without doing so itself. Its stdin is a pipe only this process writes to; the kernel closes it
 * however this process ends. `detached` gives it a session of its own, out of reach of signals
 * sent to this process group or terminal.
 */
function startGuardian() {
  const out = openSync(join(logsDir, 'guardian.log'), 'a');
  guardian = spawn(process.execPath, [join(root, 'scripts', 'cluster', 'guardian.mjs'), dataDir, String(process.pid), String(identity(process.pid).startTime)], { stdio: ['pipe', out, out], detached: true });
  closeSync(out);
  guardian.unref();
  guardian.on('error', (err) => log(`guardian: ${err.message}`));
}
startGuardian();

function processTable() {
  const part = (p) => ({ name: p.name, ...identity(p.pid), log: p.logFile, restarts: p.restarts });
  const retiringOf = (kind) => [...retiring].filter((p) => p.name.startsWith(`${kind}-`)).map(part);
  return {
    updatedAt: new Date().toISOString(),
    // The control socket scales and stops parts only when 'ready' (it answers 503 otherwise).
    state: clusterState(),
    supervisor: { ...identity(process.pid), socket: socketPath },
    guardian: { ...identity(guardian?.pid), log: join(logsDir, 'guardian.log') },
    stopDeadlineMs: STOP_DEADLINE_MS,
    url: `${scheme}://127.0.0.1:${ports.nginx}`,
    nginx: { url: `${scheme}://127.0.0.1:${ports.nginx}`, ...identity(nginx.child?.pid), config: nginx.confFile, log: nginx.logFile },
    // The certificate clients must trust (NODE_EXTRA_CA_CERTS, curl --cacert) when it is self-signed.
    ...(certificate ? { tls: { cert: certificate.cert, selfSigned: certificate.selfSigned, ...(edge.tls.httpPort ? { redirectFrom: `http://127.0.0.1:${edge.tls.httpPort}` } : {}) } } : {}),
    api: apis.map((a) => ({ ...part(a), url: `http://127.0.0.1:${a.port}` })),
    writers: writers.map((w) => ({ ...part(w), health: `http://127.0.0.1:${w.port}/health/ready`, metrics: `http://127.0.0.1:${w.port}/metrics` })),
    retiring: { api: retiringOf('api'), writers: retiringOf('writer') },
    db: useCockroach ? 'cockroach' : 'postgres',
    ...(database?.table() ?? (useCockroach ? { cockroach: { nodes: cockroachSpawned.map((n) => ({ name: n.name, ...identity(n.child?.pid) })) } } : {})),
    redis: { url: stack?.redisUrl, ...identity(stack?.redis.child?.pid), log: stack?.redis.logFile },
  };
}

/** Rewritten whenever a process starts or restarts, so the guardian always knows every pid. */
function saveProcessTable() {
  writeTable(dataDir, processTable());
}
// Before PostgreSQL or Redis start: from now on the guardian can find them by their pid files.
saveProcessTable();

// ---------------------------------------------------------------------------------------------
// Start-up: the data services, the migrations, the writers and replicas, nginx.

try {
  const backend = {
    ...{ dataDir, logsDir, ports, log, cockroachBin, held, saveProcessTable },
    stopping: () => shuttingDown,
    setStack: (s) => (stack = s),
    onCockroachSpawn: (node) => {
      if (!cockroachSpawned.includes(node)) cockroachSpawned.push(node);
      saveProcessTable();
    },
  };
  database = useCockroach ? await startCockroachBackend(backend) : await startPostgresBackend(backend);
} catch (err) {
  if (err.exitCode === 2) console.error(err.message);
  else log(err.message);
  await shutdown('start-up failure', err.exitCode ?? 1);
}
saveProcessTable();
await checkpoint();

const appEnv = {
  ...process.env,
  REDIS_URL: stack.redisUrl,
  MIGRATE_ON_START: 'false',
  // Locally every client is 127.0.0.1, so a per-client limit would throttle the whole machine
  // (and every load test); nginx's per-address limit_req still applies. Set RATE_LIMIT to try it.
  RATE_LIMIT: process.env.RATE_LIMIT ?? '10000000',
  // nginx and the replicas share this machine's clock, and a replica that dies refuses
  // connections at once, so nginx's stamp is the wait in the replica: a spike queued there is
  // refused after 100 ms (docs/OPERATIONS.md, SHED_QUEUE_TIME_MS; off by default elsewhere).
  SHED_QUEUE_TIME_MS: process.env.SHED_QUEUE_TIME_MS ?? '100',
};

log('applying migrations');
// Not spawnSync: signals must still be handled while it runs. Its own process group, so a
// terminal's Ctrl-C reaches this process only, which then stops it as part of the stop.
const migrate = spawn(process.execPath, ['dist/libs/database/src/migrate.main.js'], { cwd: root, env: { ...appEnv, ...database.migrateEnv }, stdio: 'inherit', detached: true });
const migrated = new Promise((resolve) => {
  migrate.once('exit', (code, signal) => resolve(code ?? signal));
  migrate.once('error', (err) => resolve(err.message));
});
const migration = await Promise.race([migrated, stopRequestedDuringStartup.then(() => 'stop requested')]);
if (migration === 'stop requested') {
  migrate.kill('SIGTERM');
  await migrated;
  await checkpoint();
}
if (migration !== 0) {
  log(`migrations failed (${migration}); see the output above`);
  await shutdown('start-up failure', 1);
}
await checkpoint();

/**
 * Starts one API replica or writer on a free port and adds it to `apis` or `writers` (before it
 * is spawned, so the process table written at the spawn has it). Its health URL is how the
 * supervisor sees it. Refused once a stop has begun: the stop would not know of it.
 */
async function startPart(kind) {
  const number = kind === 'api' ? nextApi++ : nextWriter++;
  const name = `${kind}-${number}`;
  const port = await freePort();
  if (shuttingDown) throw new Error(`not starting ${name}: the cluster is stopping`);
  // Writers and replicas are spread over the CockroachDB nodes (with PostgreSQL, all use the primary).
  const dbEnv = database.env(kind === 'api' ? number : number - 1);
  const proc = new Supervised({
    name,
    entry: `dist/apps/${kind}/src/main.js`,
    env: kind === 'api' ? { ...appEnv, ...dbEnv, PORT: String(port), HOST: '127.0.0.1', REPLICA_NAME: name } : { ...appEnv, ...dbEnv, WRITER_HEALTH_PORT: String(port) },
    healthUrl: `http://127.0.0.1:${port}/health/ready`,
    logFile: join(logsDir, `${name}.log`),
    log,
    // Every spawn (the first and each restart) goes into the table at once, for the guardian.
    onSpawn: () => saveProcessTable(),
    ...(kind === 'api' ? { onMessage: onReplicaMessage } : {}),
  });
  proc.port = port;
  (kind === 'api' ? apis : writers).push(proc);
  proc.start();
  return proc;
}

/**
 * A replica about to close (apps/api/src/main.ts) says `draining` and waits for `out-of-rotation`
 * before it stops listening. When the supervisor itself is stopping it (scale-down, shutdown) it is
 * out of nginx already and the answer comes at once. When someone else sent the SIGTERM (an
 * operator, a process manager), it leaves nginx first, as in a scale-down, so that no request
 * reaches a closing server; the supervisor then restarts it (an exit it did not ask for) and puts it
 * back once it is ready. The last replica in nginx stays in: better a few refused requests than none served.
 */
async function onReplicaMessage(part, child, message) {
  if (message?.type !== 'draining') return;
  const answer = () => part.tell(child, { type: 'out-of-rotation' });
  // This child's exit, taken now: a restart replaces part.exited with the next child's.
  const exited = part.child === child ? part.exited : undefined;
  if (!exited || !startupDone || shuttingDown || retiring.has(part) || !apis.includes(part) || joining.has(part) || outOfRotation.has(part)) return answer();
  if (inRotation().length <= 1) {
    log(`${part.name} is stopping (SIGTERM from outside the supervisor) but is the only replica in nginx: it stays in`);
    return answer();
  }
  outOfRotation.add(part);
  try {
    try {
      await reloadNginx();
      log(`${part.name} is stopping (SIGTERM from outside the supervisor): out of nginx before it closes; it will be restarted`);
    } catch (err) {
      log(`${part.name}: could not take it out of nginx: ${err.message}`);
    }
    answer();
    // Nobody else holds a deadline over a stop the supervisor did not ask for.
    const deadline = deadlineOf(part) + 10_000;
    const timer = setTimeout(() => {
      log(`${part.name} did not stop within ${deadline} ms of its SIGTERM; killing it`);
      child.kill('SIGKILL');
    }, deadline);
    await exited;
    clearTimeout(timer);
    // The supervisor restarts it (an exit it did not ask for); back into nginx once it is ready,
    // however many restarts that takes, unless it was scaled away or the cluster stops.
    while (!shuttingDown && apis.includes(part) && !retiring.has(part) && (await part.health()) !== 'ready') await sleep(500);
  } finally {
    outOfRotation.delete(part);
  }
  if (!shuttingDown && apis.includes(part) && !retiring.has(part)) {
    await reloadNginx().then(() => log(`${part.name} restarted and back in nginx`), (err) => log(`${part.name}: could not put it back into nginx: ${err.message}`));
  }
}

async function status() {
  // One copy of the lists: a scale step may change them while the probes below are out.
  const [apiParts, writerParts] = [[...apis], [...writers]];
  const full = processTable();
  const table = { ...full, api: full.api.filter((a) => apiParts.some((p) => p.name === a.name)), writers: full.writers.filter((w) => writerParts.some((p) => p.name === w.name)) };
  const probe = async (url) => {
    try {
      const code = url.startsWith('https:') ? await httpsStatus(url, certificate.cert) : (await fetch(url, { signal: AbortSignal.timeout(1_000) })).status;
      return code === 200 ? 'ready' : `not ready (${code})`;
    } catch {
      return 'down';
    }
  };
  table.nginx.health = await probe(`${table.nginx.url}/health/live`);
  const byName = (list, name) => list.find((entry) => entry.name === name);
  await Promise.all([...apiParts.map(async (a) => (byName(table.api, a.name).health = await a.health())), ...writerParts.map(async (w) => (byName(table.writers, w.name).health = await w.health()))]);
  await database.health(table);
  table.redis.health = await stack.redis.cli('PING').then((r) => (r === 'PONG' ? 'ready' : r), () => 'down');
  return table;
}

/** A part that never gets ready is taken out again (and stopped) before the error goes to the caller. */
async function readyOrRemoved(part, list) {
  try {
    await part.waitReady();
  } catch (err) {
    list.splice(list.indexOf(part), 1);
    await retire(part);
    throw err;
  }
}

/** A part leaving: out of its list at once (so nginx and status forget it), in the table until it has exited. */
async function retire(part, beforeStop = async () => {}) {
  retiring.add(part);
  saveProcessTable();
  try {
    await beforeStop();
    await part.stop(deadlineOf(part));
  } finally {
    retiring.delete(part);
    saveProcessTable();
  }
}

let scaling = Promise.resolve();
/** Live scaling: new replicas join nginx only when ready; removed ones leave nginx first, then drain. */
function scale(target) {
  const step = scaling.then(async () => {
    while (target.api !== undefined && apis.length < target.api) {
      const api = await startPart('api');
      joining.add(api);
      try {
        await readyOrRemoved(api, apis);
      } finally {
        joining.delete(api);
      }
      await reloadNginx();
      log(`scaled up: ${api.name} on port ${api.port} joined nginx`);
    }
    while (target.api !== undefined && apis.length > target.api) {
      // A replica already out of nginx (stopped from outside, restarting) goes first: removing
      // another would leave nginx with fewer replicas than asked for, or none.
      const out = apis.findLastIndex((a) => outOfRotation.has(a));
      const [api] = apis.splice(out >= 0 ? out : apis.length - 1, 1);
      await retire(api, () => reloadNginx());
      log(`scaled down: ${api.name} left nginx, drained and stopped`);
    }
    while (target.writers !== undefined && writers.length < target.writers) {
      await readyOrRemoved(await startPart('writer'), writers);
      log(`scaled up: ${writers.at(-1).name}`);
    }
    while (target.writers !== undefined && writers.length > target.writers) {
      const writer = writers.pop();
      await retire(writer);
      log(`scaled down: ${writer.name} drained and stopped`);
    }
    saveProcessTable();
  });
  // A failed step is reported to its caller; it must not poison every later scale request.
  scaling = step.catch((err) => log(`scaling failed: ${err.message}`));
  return step;
}

const DRILL_PARTS = { postgres: () => stack.primary, redis: () => stack.redis };
async function drill(part, action) {
  if (part === 'postgres' && useCockroach) throw new Error('this cluster runs CockroachDB, not PostgreSQL (--db cockroach)');
  const target = DRILL_PARTS[part]();
  if (action === 'stop') {
    held.add(part);
    await target.stop(part === 'postgres' ? 'fast' : undefined);
    log(`${part} stopped on request; it stays down until \`npm run cluster -- start ${part}\``);
  } else {
    await target.start();
    held.delete(part);
    log(`${part} started on request`);
  }
}

/** The one stop; a second call (another signal, a failed start) waits for the first. It ends the process. */
function shutdown(reason, exitCode = 0) {
  shutdownPromise ??= stopEverything(reason, exitCode).catch((err) => {
    // The table stays: the guardian, which sees this process end, finishes the stop.
    log(`the stop failed (${err.message}); the guardian stops what is left`);
    process.exit(1);
  });
  return shutdownPromise;
}

async function stopEverything(reason, exitCode) {
  shuttingDown = true;
  log(`${reason}: stopping nginx (in-flight requests finish), then the APIs and the writers (they drain and flush), then Redis and ${useCockroach ? 'CockroachDB' : 'PostgreSQL'}`);
  control?.close();
  clearInterval(watchdog);
  for (const p of [...apis, ...writers, ...retiring]) p.noMoreRestarts();
  // A watchdog round in progress may be starting nginx, Redis or PostgreSQL again: let it end
  // (it checks shuttingDown before each start; one already under way is bounded).
  const roundEnds = Date.now() + STOP_DEADLINES_MS.watchdogRound;
  while (watching && Date.now() < roundEnds) await sleep(50);
  await nginx.stop(STOP_DEADLINES_MS.nginx);
  await Promise.all([...apis, ...writers, ...retiring].map((p) => p.stop(deadlineOf(p))));
  // Redis (and CockroachDB's nodes) by their handles; PostgreSQL below, by the sweep alone, so
  // that it gets one fast, immediate, SIGKILL sequence rather than two.
  await (useCockroach ? stack?.stop() : stack?.redis.stop())?.catch((err) => log(`stopping ${useCockroach ? 'Redis and CockroachDB' : 'Redis'}: ${err.message}`));
  // PostgreSQL, and whatever the steps above did not reach (a server whose stop failed, one a
  // watchdog round started regardless): the same stop, by process table and pid files, as the guardian's.
  const swept = await stopCluster(dataDir, log);
  const left = swept.filter((p) => p.kind !== 'postgres' || useCockroach);
  if (left.length) log(`also stopped: ${left.map((p) => `${p.name} (${p.pid})`).join(', ')}`);
  // Last: with the table gone, the guardian (which sees this process end) has nothing to do.
  rmSync(socketPath, { force: true });
  removeTable(dataDir);
  log(exitCode === 0 ? 'stopped cleanly' : 'stopped after a failed start');
  process.exit(exitCode);
}

// The control socket: `npm run cluster -- status | scale | stop/start <part>`.
control = createControlServer({
  // Nothing is scaled, stopped or started before the cluster is up or once its stop has begun.
  refusal: () => ({ starting: 'the cluster is still starting', stopping: 'the cluster is stopping' })[clusterState()],
  status,
  scale,
  drill,
});
await new Promise((resolve) => {
  control.once('error', (err) => {
    log(`control socket ${socketPath}: ${err.message}`);
    void shutdown('start-up failure', 1);
  });
  control.listen(socketPath, resolve);
});

try {
  for (let i = 0; i < wanted.writers; i++) {
    await startPart('writer');
    await checkpoint();
  }
  for (let i = 0; i < wanted.api; i++) {
    await startPart('api');
    await checkpoint();
  }
  // Up to 60 s each; a stop requested meanwhile does not wait for that.
  await Promise.race([Promise.all([...apis, ...writers].map((p) => p.waitReady())), stopRequestedDuringStartup]);
  await checkpoint();
  await nginx.start(apis);
} catch (err) {
  log(`${err.message}`);
  await shutdown('start-up failure', 1);
}
startupDone = true;
saveProcessTable();
await checkpoint();

/**
 * Redis and PostgreSQL (or the CockroachDB nodes) are supervised too: if one dies it is started
 * again (Redis replays its AOF; PostgreSQL recovers from its WAL; a CockroachDB node rejoins and
 * catches up from its peers) and the restart is logged. Meanwhile the APIs answer
 * 503 (Redis) or keep queueing (PostgreSQL), and the writers retry.
 */
watchdog = setInterval(async () => {
  if (shuttingDown || watching) return;
  watching = true;
  try {
    if (!shuttingDown && (guardian.exitCode !== null || guardian.signalCode !== null)) {
      log(`the guardian exited (${guardian.signalCode ?? `code ${guardian.exitCode}`}); starting it again (log: ${rel(join(logsDir, 'guardian.log'))})`);
      startGuardian();
      saveProcessTable();
    }
    if (!shuttingDown && nginx.child && (nginx.child.exitCode !== null || nginx.child.signalCode !== null)) {
      log(`nginx exited; restarting it (log: ${rel(nginx.logFile)})`);
      // Workers outlive a killed master and keep the port: end the whole process group first.
      try {
        process.kill(-nginx.child.pid, 'SIGKILL');
      } catch {
        // nothing left of the old group
      }
      await nginx.start(upstreamList());
      saveProcessTable();
    }
    if (!shuttingDown && !stack.redis.running && !held.has('redis')) {
      log(`redis exited; restarting it (log: ${rel(stack.redis.logFile)})`);
      await stack.redis.start();
      saveProcessTable();
    }
    await database.watch();
  } catch (err) {
    log(`watchdog: ${err.message}`);
  } finally {
    watching = false;
  }
}, 2_000);
watchdog.unref();

const table = processTable();
const rows = [
  ['part', 'where', 'pid', 'log'],
  ['nginx', table.nginx.url, table.nginx.pid, rel(nginx.logFile)],
  ...table.api.map((a) => [a.name, a.url, a.pid, rel(a.log)]),
  ...table.writers.map((w) => [w.name, w.health, w.pid, rel(w.log)]),
  ...database.rows(),
  ['redis', stack.redisUrl, table.redis.pid, rel(stack.redis.logFile)],
  ['guardian', 'stops all of this if the supervisor dies', guardian.pid, rel(join(logsDir, 'guardian.log'))],
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
console.log(rows.map((r) => r.map((v, c) => String(v).padEnd(widths[c])).join('  ')).join('\n'));
if (certificate?.selfSigned) {
  const cert = rel(certificate.cert);
  log(`HTTPS with a self-signed certificate for 127.0.0.1 and localhost: ${cert} (SHA-256 ${fingerprintOf(certificate.cert)})`);
  log(`  trust it: curl --cacert ${cert} ${table.url}/health/live; Node: NODE_EXTRA_CA_CERTS=${cert}; bring your own with NGINX_TLS_CERT and NGINX_TLS_KEY`);
}
log(`ready on ${table.url} (process table: ${rel(join(dataDir, 'cluster.json'))}; Ctrl-C stops everything)`);
