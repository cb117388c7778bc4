// A randomised fault run: `npm run chaos -- [--seed N] [--duration S] [--faults N] [--rate R]`
//
// Starts the real cluster (scripts/start.mjs, as `npm start` does, on free ports in a temp
// folder), runs the open-model load generator against it with --verify for `--duration` seconds,
// and meanwhile injects `--faults` faults at moments drawn from a seeded PRNG: SIGKILL or
// SIGSTOP/SIGCONT of a writer, an API replica or Redis, SIGKILL of nginx, a restart of the
// PostgreSQL primary, a live scale of the replicas or the writers. After the load it resends every
// indeterminate reading with its own key, waits for the drain and checks the ledger (acknowledged
// ⊆ stored, exactly once, values equal, rejected never stored). It prints the seed, the schedule
// and the counts; the same seed gives the same schedule. Exit code 0 only if the ledger holds.
//
// --negative-control: the run the checker must fail. Redis's AOF is switched off, the writers
// are scaled to 0 so acknowledged jobs wait in Redis, Redis is killed; the run passes only if the
// checker reports the loss (docs/FAULTS.md).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BenchCluster } from '../bench/lib/cluster.mjs';
import { ensureBuilt, ensureDependencies, ensureSystemPackages } from './lib/setup.mjs';
import { waitFor } from './lib/stack.mjs';

const { values: o } = parseArgs({
  options: {
    seed: { type: 'string' },
    duration: { type: 'string', default: '600' },
    faults: { type: 'string', default: '30' },
    rate: { type: 'string', default: '100' },
    'negative-control': { type: 'boolean', default: false },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (o.help) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}

const seed = o.seed !== undefined ? Number(o.seed) >>> 0 : Math.floor(Math.random() * 2 ** 31);
const durationS = Number(o.duration);
const faultCount = Number(o.faults);
const rate = Number(o.rate);
for (const [name, v, min] of [['duration', durationS, 20], ['faults', faultCount, 0], ['rate', rate, 1]]) {
  if (!Number.isFinite(v) || v < min) {
    console.error(`--${name} must be a number of at least ${min}`);
    process.exit(2);
  }
}

const KINDS = ['kill writer', 'pause writer', 'kill api', 'pause api', 'kill redis', 'pause redis', 'kill nginx', 'restart postgres', 'scale api', 'scale writers'];

/**
 * The schedule: `count` faults at moments spread over the run (not in its first 5 s or last
 * 10 s), each with its own parameters, drawn from `random` (the load generator's seeded PRNG).
 */
function faultSchedule(random, count, durationSeconds) {
  const pick = (n) => Math.floor(random() * n);
  const span = durationSeconds - 15;
  return Array.from({ length: count }, () => ({
    at: Math.round((5 + random() * span) * 1000),
    kind: KINDS[pick(KINDS.length)],
    // Which process of its kind (an index into the live list, wrapped), how long a pause lasts, the target of a scale.
    index: pick(16),
    pauseMs: 1_000 + pick(4_000),
    target: 1 + pick(3),
  })).sort((a, b) => a.at - b.at);
}

const log = (line) => console.log(`[chaos ${new Date().toISOString().slice(11, 23)}] ${line}`);

async function inject(cluster, fault) {
  const table = cluster.table();
  const pidOf = (list) => list[fault.index % list.length]?.pid;
  const pause = async (pid) => {
    process.kill(pid, 'SIGSTOP');
    await sleep(fault.pauseMs);
    process.kill(pid, 'SIGCONT');
  };
  switch (fault.kind) {
    case 'kill writer':
      if (table.writers.length) process.kill(pidOf(table.writers), 'SIGKILL');
      return `writer pid ${pidOf(table.writers) ?? '(none)'}`;
    case 'pause writer':
      if (table.writers.length) await pause(pidOf(table.writers));
      return `writer pid ${pidOf(table.writers) ?? '(none)'} for ${fault.pauseMs} ms`;
    case 'kill api':
      process.kill(pidOf(table.api), 'SIGKILL');
      return `api pid ${pidOf(table.api)}`;
    case 'pause api':
      await pause(pidOf(table.api));
      return `api pid ${pidOf(table.api)} for ${fault.pauseMs} ms`;
    case 'kill redis':
      process.kill(table.redis.pid, 'SIGKILL');
      return `redis pid ${table.redis.pid}`;
    case 'pause redis':
      await pause(table.redis.pid);
      return `redis pid ${table.redis.pid} for ${fault.pauseMs} ms`;
    case 'kill nginx':
      process.kill(table.nginx.pid, 'SIGKILL');
      return `nginx master pid ${table.nginx.pid}`;
    case 'restart postgres':
      // Down for the pause, as a crash and restart would be; the watchdog is told to leave it down meanwhile.
      await cluster.control('POST', '/stop/postgres');
      await sleep(fault.pauseMs);
      await cluster.control('POST', '/start/postgres');
      return `primary down ${fault.pauseMs} ms`;
    case 'scale api':
      await cluster.control('POST', '/scale', { api: fault.target });
      return `to ${fault.target} replicas`;
    case 'scale writers':
      await cluster.control('POST', '/scale', { writers: fault.target });
      return `to ${fault.target} writers`;
    default:
      throw new Error(`unknown fault ${fault.kind}`);
  }
}

ensureDependencies();
ensureSystemPackages(['redis-server', 'postgres', 'nginx', 'openssl']);
ensureBuilt();
// Built now: the same seeded PRNG (mulberry32) the load generator's traffic uses.
const { rng } = await import('../dist/apps/loadgen/src/traffic.js');

const cluster = await BenchCluster.inTempFolder('mi-chaos-', { apis: 2, writers: 2 });
const { work } = cluster;
// Short job locks, so that a killed or paused writer's jobs come back within seconds and the
// drain after the run is bounded (the default 30 s lock + 30 s check would be a minute each).
const clusterEnv = { WRITER_LOCK_DURATION_MS: '5000', WRITER_STALLED_INTERVAL_MS: '2000', DB_STATEMENT_TIMEOUT_MS: '4000', WRITER_MAX_STALLED_COUNT: '100' };
let exitCode = 1;
const report = { seed, durationS, rate, negativeControl: o['negative-control'], schedule: [], loadgen: undefined };
try {
  await cluster.start('queue', clusterEnv);
  const loadArgs = ['--rate', String(rate), '--seed', String(seed), '--verify', '--resolve-indeterminate', '--database-url', cluster.primaryUrl];
  const logFile = join(work, 'loadgen.log');

  if (o['negative-control']) {
    const { Redis } = await import('ioredis');
    const redis = new Redis(cluster.table().redis.url);
    log('negative control: AOF off, writers scaled to 0, then Redis killed: the checker must report the loss');
    await redis.config('SET', 'appendonly', 'no');
    redis.disconnect();
    await cluster.control('POST', '/scale', { writers: 0 });
    // The lost readings never arrive: no long wait for them.
    const load = cluster.runLoadgen([...loadArgs, '--drain-timeout', '15', '--duration', String(durationS), '--batch-share', '0'], { logFile });
    await sleep((durationS * 1000) / 2);
    const pid = cluster.table().redis.pid;
    process.kill(pid, 'SIGKILL');
    report.schedule.push({ at: Math.round((durationS * 1000) / 2), kind: 'kill redis (no AOF)', did: `redis pid ${pid}` });
    await waitFor('the supervisor to restart Redis', () => cluster.table().redis.pid !== pid, 30_000, 200);
    await cluster.control('POST', '/scale', { writers: 1 });
    const { code, summary } = await load;
    report.loadgen = summary;
    const lost = summary?.verify?.lost?.length ?? 0;
    log(`negative control: the checker reports ${lost} acknowledged readings lost (loadgen exit ${code})`);
    exitCode = code !== 0 && lost > 0 ? 0 : 1;
    if (exitCode !== 0) log('FAILED: the checker did not see the loss a Redis without AOF must cause');
  } else {
    const schedule = faultSchedule(rng(seed), faultCount, durationS);
    log(`seed ${seed}: ${schedule.length} faults over ${durationS} s at ${rate} requests/s (reproduce with --seed ${seed} --duration ${durationS} --faults ${faultCount} --rate ${rate})`);
    const load = cluster.runLoadgen([...loadArgs, '--drain-timeout', '240', '--duration', String(durationS)], { logFile });
    const start = Date.now();
    for (const fault of schedule) {
      const wait = start + fault.at - Date.now();
      if (wait > 0) await sleep(wait);
      const at = Date.now() - start;
      try {
        const did = await inject(cluster, fault);
        report.schedule.push({ at, kind: fault.kind, did });
        log(`${(at / 1000).toFixed(1).padStart(6)} s  ${fault.kind}: ${did}`);
      } catch (err) {
        // A fault that could not be made (a scale refused mid-restart) is reported, not fatal.
        report.schedule.push({ at, kind: fault.kind, error: err.message });
        log(`${(at / 1000).toFixed(1).padStart(6)} s  ${fault.kind}: not made (${err.message})`);
      }
    }
    const { code, summary } = await load;
    report.loadgen = summary;
    const v = summary?.verify;
    log(`requests ${summary?.requests} by status ${JSON.stringify(summary?.byStatus)}`);
    log(`readings: acknowledged ${summary?.readings?.acknowledged}, rejected ${summary?.readings?.rejected}, indeterminate ${summary?.readings?.indeterminate}; resent ${summary?.resolution?.resent ?? 0} (${summary?.resolution?.acknowledged ?? 0} acknowledged on resend)`);
    if (v) log(`ledger: lost ${v.lost.length}, duplicated ${v.duplicated.length}, values differ ${v.valueMismatch.length}, rejected but stored ${v.rejectedButStored.length}, rows nobody sent ${v.unexpected.length}; drained ${v.drained ? `after ${v.drainMs} ms` : 'NOT'}`);
    exitCode = code;
    log(code === 0 ? `PASSED (seed ${seed})` : `FAILED (seed ${seed}): loadgen exit ${code}; its log: ${logFile}`);
  }
} catch (err) {
  log(`FAILED: ${err.stack ?? err.message}`);
  exitCode = 1;
} finally {
  await cluster.stop();
  if (o.out) writeFileSync(o.out, `${JSON.stringify({ ...report, exitCode }, null, 2)}\n`);
  if (exitCode === 0 && !o.keep) rmSync(work, { recursive: true, force: true });
  else log(`data and logs kept in ${work}`);
}
process.exit(exitCode);
