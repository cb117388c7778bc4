// Stops a cluster that has lost its supervisor, from what its data folder says: the process
// table (API replicas, writers, and the servers' pids) and the pid files the servers keep
// themselves (nginx, Redis, PostgreSQL's postmaster.pid, CockroachDB). Used by the guardian the
// moment the supervisor dies, by `npm start` when it finds a cluster an earlier run left behind,
// and by the supervisor as the last step of its own stop. The order and the signals are the
// supervisor's own: nginx stops accepting and finishes what it has, the APIs drain, the writers
// flush, then Redis (it fsyncs its AOF on SIGTERM) and PostgreSQL (fast shutdown).
// Node built-ins only.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findPgBin } from '../lib/stack.mjs';
import { STOP_DEADLINE_MS, STOP_DEADLINES_MS } from '../lib/stop-deadlines.mjs';
import { bootId, processAlive, readPidFile, readTable } from './process-table.mjs';

export { STOP_DEADLINE_MS, STOP_DEADLINES_MS };

const ENTRY = { api: 'dist/apps/api/src/main.js', writer: 'dist/apps/writer/src/main.js' };

/** The table's pids, or none when it was written before this boot of the machine. */
function currentTable(dataDir) {
  const table = readTable(dataDir);
  if (!table) return undefined;
  return table.bootId && table.bootId !== bootId() ? { stale: true } : table;
}

/**
 * Every process of the cluster in `dataDir` that still runs: [{ name, kind, pid, expect, dataDir? }].
 * Each is checked against what it must be (see processAlive): the data folder's own paths, its
 * log file, and the start time recorded at its spawn, so that nothing else is ever signalled.
 */
export function clusterProcesses(dataDir) {
  const table = currentTable(dataDir) ?? {};
  const found = new Map();
  const add = (name, kind, pids, expect, extra = {}) => {
    for (const pid of pids) {
      if (pid && !found.has(pid) && processAlive(pid, expect)) found.set(pid, { name, kind, pid, expect, ...extra });
    }
  };
  const fromTable = (entry) => (entry?.pid && entry.startTime ? [{ pid: entry.pid, startTime: entry.startTime }] : []);
  const nginxConf = join(dataDir, 'nginx', 'nginx.conf');
  add('nginx', 'nginx', [readPidFile(join(dataDir, 'nginx', 'nginx.pid')), table.nginx?.pid], { cmd: 'nginx', arg: nginxConf });
  for (const [kind, list] of [['api', table.api], ['writer', table.writers], ['api', table.retiring?.api], ['writer', table.retiring?.writers]]) {
    for (const part of list ?? []) {
      // Start time and boot id identify it; its log file is not checked (it may have been rotated).
      for (const { pid, startTime } of fromTable(part)) add(part.name, kind, [pid], { cmd: ENTRY[kind], startTime });
    }
  }
  add('redis', 'redis', [readPidFile(join(dataDir, 'redis', 'redis.pid')), table.redis?.pid], { cmd: 'redis-server', cwd: join(dataDir, 'redis') });
  const cockroachDir = join(dataDir, 'cockroach');
  if (existsSync(cockroachDir)) {
    const tablePids = new Map((table.cockroach?.nodes ?? []).map((n) => [n.name, n.pid]));
    for (const node of readdirSync(cockroachDir).filter((dir) => /^node\d+$/.test(dir)).sort()) {
      const name = `cockroach-${node.slice(4)}`;
      add(name, 'cockroach', [readPidFile(join(cockroachDir, node, 'cockroach.pid')), tablePids.get(name)], { cmd: 'cockroach', arg: `--store=path=${join(cockroachDir, node)}` });
    }
  }
  // Replica before primary: that is the order they are stopped in.
  for (const [name, dir] of [['postgres replica', 'pg-replica'], ['postgres primary', 'pg-primary']]) {
    const pgData = join(dataDir, dir);
    // pg_ctl starts it as `postgres -D <folder> …`: the folder is a whole argument, readable as
    // any user (its working directory, checked too, is not when we are root and it is not).
    add(name, 'postgres', [readPidFile(join(pgData, 'postmaster.pid'))], { cmd: 'postgres', arg: pgData, cwd: pgData }, { dataDir: pgData });
  }
  return [...found.values()];
}

async function exited(p, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(p.pid, p.expect)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

function signal(p, sig) {
  try {
    // nginx's workers share the master's process group (it was spawned detached): a SIGKILL to
    // the master alone would leave them serving and holding the port.
    process.kill(sig === 'SIGKILL' && p.kind === 'nginx' ? -p.pid : p.pid, sig);
  } catch {
    // gone meanwhile
  }
}

/** One process: its stop signal, then SIGKILL after its deadline. */
async function stopOne(p, log) {
  const sig = p.kind === 'nginx' ? 'SIGQUIT' : 'SIGTERM';
  signal(p, sig);
  if (await exited(p, STOP_DEADLINES_MS[p.kind])) return;
  log(`${p.name} (pid ${p.pid}) did not stop within ${STOP_DEADLINES_MS[p.kind]} ms of ${sig}; killing it`);
  signal(p, 'SIGKILL');
  await exited(p, STOP_DEADLINES_MS.kill);
}

/** pg_ctl stop (as the postgres user when we are root): fast, then immediate, then SIGKILL. */
async function stopPostgres(p, log) {
  const pgCtl = findPgBin('pg_ctl');
  const pgCtlStop = (mode, ms) => {
    const args = ['-D', p.dataDir, '-m', mode, '-w', '-t', String(ms / 1000), 'stop'];
    const [cmd, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', pgCtl, ...args]] : [pgCtl, args];
    // The deadline is pg_ctl's own -t; the spawn's timeout only guards against a pg_ctl that hangs.
    return spawnSync(cmd, argv, { encoding: 'utf8', timeout: ms + 1_000 });
  };
  // pg_ctl returns once postmaster.pid is gone, a moment before the process itself has exited.
  const fast = pgCtlStop('fast', STOP_DEADLINES_MS.postgresFast);
  if (await exited(p, 1_000)) return;
  log(`${p.name} did not finish a fast shutdown within ${STOP_DEADLINES_MS.postgresFast} ms (${(fast.stderr || fast.stdout || String(fast.error ?? '')).trim().split('\n').at(-1)}); stopping it with -m immediate`);
  const immediate = pgCtlStop('immediate', STOP_DEADLINES_MS.postgresImmediate);
  if (await exited(p, 1_000)) return;
  log(`${p.name} (pid ${p.pid}) did not stop with -m immediate either (${(immediate.stderr || immediate.stdout || String(immediate.error ?? '')).trim().split('\n').at(-1)}); killing it`);
  signal(p, 'SIGKILL');
  await exited(p, STOP_DEADLINES_MS.kill);
}

/**
 * Stops whatever of the cluster in `dataDir` still runs, in the supervisor's order (nginx; the
 * APIs and writers together; Redis and any CockroachDB nodes together; the PostgreSQL replica,
 * then the primary), and returns the processes it found. Safe to run on a folder where nothing
 * runs (it finds nothing) and safe to run twice.
 */
export async function stopCluster(dataDir, log = () => {}) {
  const procs = clusterProcesses(dataDir);
  const of = (...kinds) => procs.filter((p) => kinds.includes(p.kind));
  // A stage that fails (a pg_ctl that cannot run, say) is logged; the later stages still run.
  const stage = async (what, fn) => {
    try {
      await fn();
    } catch (err) {
      log(`stopping ${what}: ${err.message}`);
    }
  };
  await stage('nginx', () => Promise.all(of('nginx').map((p) => stopOne(p, log))));
  await stage('the API replicas and writers', () => Promise.all(of('api', 'writer').map((p) => stopOne(p, log))));
  await stage('Redis and CockroachDB', () => Promise.all(of('redis', 'cockroach').map((p) => stopOne(p, log))));
  for (const p of of('postgres')) await stage(p.name, () => stopPostgres(p, log));
  return procs;
}

/** The supervisor named by the table, if it still runs (and is not the caller itself). */
export function liveSupervisor(dataDir) {
  const table = currentTable(dataDir);
  if (!table?.supervisor) return undefined;
  return processAlive(table.supervisor.pid, { cmd: 'start.mjs', startTime: table.supervisor.startTime }) ? table : undefined;
}

/**
 * What `npm start` does first with its data folder. A live supervisor there means the cluster is
 * running: `{ running: table }`, and the caller refuses to start a second one. Otherwise anything
 * an earlier run left is stopped cleanly (after giving that run's guardian, which may be stopping
 * it already, the time it needs) and `{ stopped }` lists what was found.
 */
export async function clearLeftovers(dataDir, log) {
  const running = liveSupervisor(dataDir);
  if (running) return { running };
  const table = currentTable(dataDir);
  const guardian = table?.guardian && { pid: table.guardian.pid, expect: { cmd: 'guardian.mjs', startTime: table.guardian.startTime } };
  if (guardian && processAlive(guardian.pid, guardian.expect)) {
    log(`the cluster of an earlier run (supervisor pid ${table.supervisor?.pid}, gone) is being stopped by its guardian (pid ${guardian.pid}); waiting for it`);
    await exited(guardian, STOP_DEADLINE_MS + 10_000);
  }
  const left = clusterProcesses(dataDir);
  if (left.length === 0) return { stopped: [] };
  log(`found a cluster left by an earlier run (supervisor pid ${table?.supervisor?.pid ?? 'unknown'} is gone): stopping ${left.map((p) => `${p.name} (${p.pid})`).join(', ')} cleanly before starting afresh on the same data`);
  const stopped = await stopCluster(dataDir, log);
  const still = clusterProcesses(dataDir);
  if (still.length) throw new Error(`could not stop ${still.map((p) => `${p.name} (pid ${p.pid})`).join(', ')} left by an earlier run; stop them by hand`);
  return { stopped };
}
