// Where the queue's fixed costs go: `node bench/experiments/per-job-cost.mjs [seconds] [rates...]`
//
// Starts the real cluster (as the benchmark does: scripts/start.mjs on free ports in a temp
// folder, dist/ built first) and, at each offered rate of singles, prints per stored reading:
// the jobs the writer completed, its database batches, Redis commands by name (from INFO
// commandstats) with Redis's own microseconds per call, and CPU ms per component. This is how
// the per-job cost of the writer and Redis shows up, which the benchmark's per-component CPU
// alone cannot tell apart from a per-reading one. MI_MODE=noop runs the replicas in the HTTP
// ceiling's mode (202 without validating, queueing or storing): the HTTP path alone at the same rate.
// ENV=VALUE pairs in MI_EXTRA_ENV (space separated) go to the cluster, so a setting can be
// compared; MI_CPU_PROF_DIR=<dir> profiles every replica and writer (scripts/cluster/supervised.mjs).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { root } from '../../scripts/lib/setup.mjs';
import { BenchCluster } from '../lib/cluster.mjs';
import { componentCpu, cpuDelta } from '../lib/cpu.mjs';

const [secondsArg, ...rateArgs] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 15);
const rates = rateArgs.length ? rateArgs.map(Number) : [300, 2000];
const extraEnv = Object.fromEntries((process.env.MI_EXTRA_ENV ?? '').split(' ').filter(Boolean).map((kv) => kv.split('=')));
const { default: Redis } = await import('ioredis');
const noop = process.env.MI_MODE === 'noop';

const cluster = await BenchCluster.inTempFolder('mi-perjob-', { apis: 2, writers: 1 });
const { work } = cluster;

async function commandStats(redis) {
  const text = await redis.info('commandstats');
  const out = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  return out;
}

async function writerCounters() {
  const t = cluster.table();
  let jobs = 0;
  let batches = 0;
  for (const w of t.writers) {
    const text = await fetch(w.metrics).then((r) => r.text());
    jobs += Number(/^writer_jobs_completed_total(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1] ?? 0);
    batches += Number(/^writer_batch_size_count(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1] ?? 0);
  }
  return { jobs, batches };
}

try {
  await cluster.start(process.env.MI_MODE ?? 'queue', extraEnv);
  const redis = new Redis(cluster.table().redis.url ?? `redis://127.0.0.1:${cluster.ports.redis}`);
  for (const rate of rates) {
    const components = cluster.components();
    const cpu0 = componentCpu(components);
    const cmd0 = await commandStats(redis);
    const w0 = await writerCounters();
    const gen = spawn(process.execPath, ['dist/apps/loadgen/src/main.js', 'run', '--url', cluster.url, '--rate', String(rate), '--duration', String(seconds), '--batch-share', '0', ...(noop ? [] : ['--verify', '--database-url', cluster.primaryUrl]), '--json', '--quiet', '--max-in-flight', '20000', '--api-key', cluster.apiKey], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    gen.stdout.on('data', (c) => (out += c));
    await new Promise((resolve) => gen.once('exit', resolve));
    const s = JSON.parse(out);
    const stored = noop ? s.readings.acknowledged : s.verify.stored;
    const cpu = cpuDelta(cpu0, componentCpu(components));
    const cmd1 = await commandStats(redis);
    const w1 = await writerCounters();
    const jobs = w1.jobs - w0.jobs;
    const batches = w1.batches - w0.batches;
    const perReading = (x) => (x / stored).toFixed(3);
    console.log(`\n${rate}/s: ${stored} stored (verify ${noop ? 'not run, noop mode' : s.verify.ok ? 'ok' : 'FAILED'}), nginx-side p99 ${s.latencyMs.p99.toFixed(1)} ms; ${jobs} jobs (${(stored / jobs).toFixed(2)} readings each), ${batches} batches (${(stored / batches).toFixed(1)} readings each)`);
    const cluster$ = Object.entries(cpu).reduce((a, [, v]) => a + (v ?? 0), 0);
    console.log(`  CPU ms per stored reading: ${Object.entries(cpu).map(([k, v]) => `${k} ${((v * 1000) / stored).toFixed(3)}`).join(', ')}; cluster ${((cluster$ * 1000) / stored).toFixed(3)}; per job: writer ${((cpu.writer * 1000) / jobs).toFixed(3)}, redis ${((cpu.redis * 1000) / jobs).toFixed(3)}`);
    const rows = Object.entries(cmd1)
      .map(([name, v]) => ({ name, calls: v.calls - (cmd0[name]?.calls ?? 0), usec: v.usec - (cmd0[name]?.usec ?? 0) }))
      .filter((r) => r.calls > 0)
      .sort((a, b) => b.usec - a.usec);
    const totalCalls = rows.reduce((a, r) => a + r.calls, 0);
    const totalUsec = rows.reduce((a, r) => a + r.usec, 0);
    console.log(`  Redis: ${perReading(totalCalls)} commands per reading, ${(totalCalls / jobs).toFixed(2)} per job; ${(totalUsec / stored).toFixed(1)} us of command time per reading (${((totalUsec / 1e6 / cpu.redis) * 100).toFixed(0)} % of Redis CPU)`);
    for (const r of rows.slice(0, 14)) console.log(`    ${r.name.padEnd(24)} ${perReading(r.calls).padStart(7)} per reading ${(r.calls / jobs).toFixed(2).padStart(7)} per job  ${(r.usec / r.calls).toFixed(1).padStart(7)} us per call  ${((r.usec / totalUsec) * 100).toFixed(1).padStart(5)} %`);
  }
  redis.disconnect();
} finally {
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
