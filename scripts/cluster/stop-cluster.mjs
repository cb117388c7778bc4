// Stops a cluster that has lost its supervisor, from what its data folder says: the process
// table (API replicas, writers) and the pid files the servers keep themselves (nginx, Redis,
// PostgreSQL's postmaster.pid, CockroachDB). Used by the guardian the moment the supervisor
// dies, and by `npm start` when it finds a cluster an earlier run left behind. The order and
// the signals are the supervisor's own: nginx stops accepting and finishes what it has, the APIs
// drain, the writers flush, then Redis (it fsyncs its AOF on SIGTERM) and PostgreSQL (fast
// shutdown). Node built-ins only.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findPgBin } from '../lib/stack.mjs';
import { STOP_DEADLINE_MS, STOP_DEADLINES_MS } from '../lib/stop-deadlines.mjs';
import { processAlive, readPidFile, readTable } from './process-table.mjs';

export { STOP_DEADLINE_MS, STOP_DEADLINES_MS };

const ENTRY = { api: 'dist/apps/api/src/main.js', writer: 'dist/apps/writer/src/main.js' };

/**
 * Every process of the cluster in `dataDir` that still runs: [{ name, kind, pid, dataDir? }].
 * A pid counts only while its command line still names what it was (see processAlive).
 */
export function clusterProcesses(dataDir) {
  const table = readTable(dataDir) ?? {};
  const found = new Map();
  const add = (name, kind, pid, token, extra = {}) => {
    if (pid && !found.has(pid) && processAlive(pid, token)) found.set(pid, { name, kind, pid, ...extra });
  };
  add('nginx', 'nginx', readPidFile(join(dataDir, 'nginx', 'nginx.pid')) ?? table.nginx?.pid, 'nginx');
  for (const a of table.api ?? []) add(a.name, 'api', a.pid, ENTRY.api);
  for (const w of table.writers ?? []) add(w.name, 'writer', w.pid, ENTRY.writer);
  add('redis', 'redis', readPidFile(join(dataDir, 'redis', 'redis.pid')) ?? table.redis?.pid, 'redis-server');
  const cockroachDir = join(dataDir, 'cockroach');
  if (existsSync(cockroachDir)) {
    for (const node of readdirSync(cockroachDir).filter((d) => /^node\d+$/.test(d)).sort()) {
      add(`cockroach-${node.slice(4)}`, 'cockroach', readPidFile(join(cockroachDir, node, 'cockroach.pid')), 'cockroach');
    }
  }
  // Replica before primary: that is the order they are stopped in.
  for (const [name, dir] of [['postgres replica', 'pg-replica'], ['postgres primary', 'pg-primary']]) {
    add(name, 'postgres', readPidFile(join(dataDir, dir, 'postmaster.pid')), 'postgres', { dataDir: join(dataDir, dir) });
  }
  return [...found.values()];
}

async function exited(pid, token, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid, token)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

const TOKEN = { nginx: 'nginx', api: ENTRY.api, writer: ENTRY.writer, redis: 'redis-server', cockroach: 'cockroach', postgres: 'postgres' };

/** One process: its stop signal, then SIGKILL after its deadline. nginx's workers share the master's process group. */
async function stopOne(p, log) {
  const signal = p.kind === 'nginx' ? 'SIGQUIT' : 'SIGTERM';
  try {
    process.kill(p.pid, signal);
  } catch {
    return; // already gone
  }
  if (await exited(p.pid, TOKEN[p.kind], STOP_DEADLINES_MS[p.kind])) return;
  log(`${p.name} (pid ${p.pid}) did not stop within ${STOP_DEADLINES_MS[p.kind]} ms of ${signal}; killing it`);
  try {
    process.kill(p.kind === 'nginx' ? -p.pid : p.pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  await exited(p.pid, TOKEN[p.kind], 5_000);
}

/** pg_ctl stop (as the postgres user when we are root): fast, and immediate if fast does not finish in time. */
function stopPostgres(p, log) {
  const pgCtl = findPgBin('pg_ctl');
  const asPostgres = (args) => (process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', pgCtl, ...args]] : [pgCtl, args]);
  const seconds = String(STOP_DEADLINES_MS.postgres / 1000);
  const [cmd, args] = asPostgres(['-D', p.dataDir, '-m', 'fast', '-w', '-t', seconds, 'stop']);
  const fast = spawnSync(cmd, args, { encoding: 'utf8' });
  if (fast.status === 0 || !processAlive(p.pid, 'postgres')) return;
  log(`${p.name} did not finish a fast shutdown within ${seconds} s (${(fast.stderr || fast.stdout).trim()}); stopping it with -m immediate`);
  const [cmd2, args2] = asPostgres(['-D', p.dataDir, '-m', 'immediate', '-w', '-t', seconds, 'stop']);
  spawnSync(cmd2, args2, { encoding: 'utf8' });
}

/**
 * Stops whatever of the cluster in `dataDir` still runs, in the supervisor's order, and returns
 * the processes it found. Safe to run on a folder where nothing runs (it finds nothing) and
 * safe to run twice.
 */
export async function stopCluster(dataDir, log = () => {}) {
  const procs = clusterProcesses(dataDir);
  const of = (...kinds) => procs.filter((p) => kinds.includes(p.kind));
  await Promise.all(of('nginx').map((p) => stopOne(p, log)));
  await Promise.all(of('api', 'writer').map((p) => stopOne(p, log)));
  await Promise.all(of('redis', 'cockroach').map((p) => stopOne(p, log)));
  for (const p of of('postgres')) stopPostgres(p, log);
  return procs;
}

/**
 * What `npm start` does first with its data folder. A live supervisor there means the cluster is
 * running: `{ running: table }`, and the caller refuses to start a second one. Otherwise anything
 * an earlier run left is stopped cleanly (after giving that run's guardian, which may be stopping
 * it already, the time it needs) and `{ stopped }` lists what was found.
 */
export async function clearLeftovers(dataDir, log) {
  const table = readTable(dataDir);
  if (table && processAlive(table.supervisor?.pid, 'start.mjs')) return { running: table };
  if (table && processAlive(table.guardian?.pid, 'guardian.mjs')) {
    log(`the cluster of an earlier run (supervisor pid ${table.supervisor?.pid}, gone) is being stopped by its guardian (pid ${table.guardian.pid}); waiting for it`);
    await exited(table.guardian.pid, 'guardian.mjs', STOP_DEADLINE_MS + 10_000);
  }
  const left = clusterProcesses(dataDir);
  if (left.length === 0) return { stopped: [] };
  log(`found a cluster left by an earlier run (supervisor pid ${table?.supervisor?.pid ?? 'unknown'} is gone): stopping ${left.map((p) => `${p.name} (${p.pid})`).join(', ')} cleanly before starting afresh on the same data`);
  const stopped = await stopCluster(dataDir, log);
  const still = clusterProcesses(dataDir);
  if (still.length) throw new Error(`could not stop ${still.map((p) => `${p.name} (pid ${p.pid})`).join(', ')} left by an earlier run; stop them by hand`);
  return { stopped };
}
