// CI's first step: the README's `npm start`, exactly as a user types it in a fresh clone, then
// what a user does next: one reading through nginx, seen stored through GET /v1/readings/{id},
// and Ctrl-C (SIGINT to the process group of `npm start`, as a terminal sends it). Passes when
// every process of the cluster has exited within the supervisor's documented stop deadline.
// Then, with no cluster up, `npm run cluster -- status`, `npm run migrate` and `npm run loadgen`
// must each say so in one line and exit 1.
// Node built-ins only: it runs before anything is installed. Prints "N passed, N failed".
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { processAlive, readPidFile, readTable } from '../scripts/cluster/process-table.mjs';
import { clusterProcesses, STOP_DEADLINE_MS, stopCluster } from '../scripts/cluster/stop-cluster.mjs';

const root = resolve(import.meta.dirname, '..');
const dataDir = join(root, '.data');
const logFile = process.argv[2] ?? join(root, 'npm-start.log');
const READY_TIMEOUT_MS = 20 * 60_000; // a first start installs npm and Debian packages and builds
const results = [];
const check = (name, ok, detail = '') => {
  results.push(ok);
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? ` (${detail})` : ''}`);
  return ok;
};
const say = (message) => console.log(`[start-smoke] ${message}`);

const out = openSync(logFile, 'a');
// Its own process group, so that SIGINT to the group is exactly a terminal's Ctrl-C.
const npm = spawn('npm', ['start'], { cwd: root, stdio: ['ignore', out, out], detached: true });
const npmExited = new Promise((r) => npm.once('exit', (code, signal) => r(code ?? signal)));
say(`npm start (pid ${npm.pid}), output in ${logFile}`);

async function until(what, fn, timeoutMs, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Every process of the cluster as the process table and the pid files name it, with what it must be (see processAlive). */
function clusterPids(table) {
  const pg = (d) => ({ pid: readPidFile(join(dataDir, d, 'postmaster.pid')), expect: { cmd: 'postgres', arg: join(dataDir, d), cwd: join(dataDir, d) } });
  return [
    { name: 'supervisor', pid: table.supervisor.pid, expect: { cmd: 'start.mjs', startTime: table.supervisor.startTime } },
    { name: 'guardian', pid: table.guardian.pid, expect: { cmd: 'guardian.mjs', startTime: table.guardian.startTime } },
    { name: 'nginx', pid: table.nginx.pid, expect: { cmd: table.nginx.config, startTime: table.nginx.startTime } },
    ...table.api.map((a) => ({ name: a.name, pid: a.pid, expect: { cmd: 'dist/apps/api/src/main.js', startTime: a.startTime } })),
    ...table.writers.map((w) => ({ name: w.name, pid: w.pid, expect: { cmd: 'dist/apps/writer/src/main.js', startTime: w.startTime } })),
    { name: 'redis', pid: table.redis.pid, expect: { cmd: 'redis-server', cwd: join(dataDir, 'redis') } },
    { name: 'postgres primary', ...pg('pg-primary') },
    { name: 'postgres replica', ...pg('pg-replica') },
  ];
}

let table;
try {
  const t0 = Date.now();
  await until('"ready on" in the output of npm start', () => {
    if (npm.exitCode !== null) throw new Error(`npm start exited with ${npm.exitCode} before it was ready; see ${logFile}`);
    return readFileSync(logFile, 'utf8').includes('ready on');
  }, READY_TIMEOUT_MS, 500);
  check('npm start on a fresh clone: installs what it needs and prints "ready on"', true, `${Math.round((Date.now() - t0) / 1000)} s`);
  table = readTable(dataDir);
  const url = table.url;
  // HTTPS by default, with the certificate the start made (the table names it): trusted here as
  // the README tells users to (curl --cacert, NODE_EXTRA_CA_CERTS), never by turning checks off.
  check('npm start serves HTTPS with its own certificate', url.startsWith('https://') && Boolean(table.tls?.cert), url);
  const ca = table.tls?.cert ? readFileSync(table.tls.cert) : undefined;
  const fetch = (target, init = {}) =>
    new Promise((resolveAnswer, reject) => {
      const req = httpsRequest(target, { method: init.method ?? 'GET', headers: init.headers ?? {}, ca, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolveAnswer({ status: res.statusCode, json: async () => JSON.parse(text) }));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${target} within 10 s`)));
      req.on('error', reject);
      req.end(init.body);
    });

  // The README's next step: a client key, then the reading with it.
  const created = spawnSync('npm', ['run', '--silent', 'clients', '--', 'create', '--name', `ci-smoke-${Date.now()}`, '--scopes', 'submit,read:own', '--json'], { cwd: root, encoding: 'utf8' });
  const key = created.status === 0 ? JSON.parse(created.stdout.trim().split('\n').pop()).key : undefined;
  check('npm run clients -- create issues a key', typeof key === 'string' && key.startsWith('mik_'), created.status === 0 ? '' : `${created.status} ${created.stderr}`);
  const auth = { authorization: `Bearer ${key}` };
  const anonymous = await fetch(`${url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  check('without a key a reading is refused with 401', anonymous.status === 401, String(anonymous.status));
  const readAt = new Date(Date.now() - 60_000).toISOString();
  const res = await fetch(`${url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ meterId: 'CI-SMOKE-1', readAt, values: { t1: 4242.5 } }) });
  const body = await res.json();
  check('a reading through nginx is accepted', res.status === 202 && typeof body.id === 'string', `${res.status} ${JSON.stringify(body)}`);
  const stored = await until('the reading to be stored', async () => {
    const r = await fetch(`${url}/v1/readings/${body.id}`, { headers: auth });
    const j = await r.json();
    return j.status === 'stored' ? j : undefined;
  }, 30_000).catch((err) => ({ error: err.message }));
  check('GET /v1/readings/{id} shows it stored with its value', stored.status === 'stored' && stored.values?.t1 === 4242.5, JSON.stringify(stored));
} catch (err) {
  check('npm start smoke', false, err.message);
}

// Ctrl-C.
table ??= readTable(dataDir);
const procs = table ? clusterPids(table).filter((p) => p.pid) : [];
// What the stop is judged on must have run before it: a process that was never there proves nothing.
const notRunning = procs.filter((p) => !processAlive(p.pid, p.expect));
check(`before Ctrl-C, every process of the cluster (${procs.length}) runs and is what the table says`, procs.length >= 9 && notRunning.length === 0, notRunning.map((p) => `${p.name} ${p.pid}`).join(', '));
const stopAt = Date.now();
try {
  process.kill(-npm.pid, 'SIGINT');
} catch {
  // npm has already gone
}
const allGone = await until('every process of the cluster to exit', () => procs.every((p) => !processAlive(p.pid, p.expect)), STOP_DEADLINE_MS, 100).then(
  () => true,
  () => false,
);
const left = procs.filter((p) => processAlive(p.pid, p.expect));
check(
  `Ctrl-C stops every process of the cluster (${procs.length}) within the stop deadline (${STOP_DEADLINE_MS / 1000} s)`,
  allGone && procs.length >= 9,
  allGone ? `${Date.now() - stopAt} ms` : `still running: ${left.map((p) => `${p.name} ${p.pid}`).join(', ')}`,
);
check('the supervisor stopped cleanly and removed its process table', readFileSync(logFile, 'utf8').includes('stopped cleanly') && !existsSync(join(dataDir, 'cluster.json')));
await Promise.race([npmExited, sleep(5_000)]);

// With no cluster up, the helper commands say so in one line (and nothing else on stderr).
for (const args of [['run', 'cluster', '--', 'status'], ['run', 'migrate'], ['run', 'loadgen'], ['run', 'clients', '--', 'list']]) {
  const r = spawnSync('npm', ['--silent', ...args], { cwd: root, encoding: 'utf8', timeout: 10 * 60_000 });
  const lines = r.stderr.trim().split('\n').filter(Boolean);
  check(`npm ${args.join(' ')} with no cluster up: exit 1 and one line "no cluster is running …"`, r.status === 1 && lines.length === 1 && lines[0].startsWith('no cluster is running'), `exit ${r.status}: ${r.stderr.trim().slice(-300)}`);
}

const failed = results.filter((ok) => !ok).length;
if (failed) {
  // The evidence, before CI throws the folder away.
  const tail = (file, n = 40) => (existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : `(no ${file})`);
  console.log(`--- last lines of npm start's output (${logFile})\n${tail(logFile)}`);
  console.log(`--- last lines of the guardian's log\n${tail(join(dataDir, 'logs', 'guardian.log'), 20)}`);
}
// Never leave anything running, whatever failed above: the cluster, then a supervisor or
// guardian that hangs.
if (clusterProcesses(dataDir).length) await stopCluster(dataDir, say);
for (const p of procs.filter((q) => ['supervisor', 'guardian'].includes(q.name) && processAlive(q.pid, q.expect))) {
  say(`${p.name} (pid ${p.pid}) still runs; killing it`);
  process.kill(p.pid, 'SIGKILL');
}
try {
  process.kill(-npm.pid, 'SIGKILL');
} catch {
  // npm's group has gone, as it should have
}
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
