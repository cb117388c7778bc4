// The soak: `npm run soak -- [--minutes 30] [--rate R] [--idempotency-ttl 300] [--out DIR]`
//
// Starts the real cluster (as the benchmark does: 2 API replicas, 1 writer, plain HTTP, on free
// ports in a temp folder), finds the sustained rate of the load generator's mix (singles, 10 %
// batches of 100, idempotency keys, 5 % invalid, 1 % resends) in 20 s steps unless --rate is
// given, then runs that mix at 70 % of it for --minutes with --verify. Every 10 s it samples
// Redis's used_memory and key count, the queue depth, and each process's anonymous resident
// memory (RssAnon: heap and stacks, not the shared pages every PostgreSQL backend maps). It
// passes only if nothing acknowledged is lost or doubled, no request failed (no 5xx, none
// unanswered), and every series is flat: after the warm-up (the idempotency window, at least
// 5 minutes), the mean of the last third is within 10 % of the mean of the middle third (the
// queue depth within 50 jobs). The idempotency window is short (5 minutes by default) so that
// what Redis holds can level off within the run; docs/OPERATIONS.md has the formula for the
// default. Results: soak.json, soak.md and three plots in --out (default
// bench/results/soak-<date>).
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, root } from '../scripts/lib/setup.mjs';
import { BenchCluster } from './lib/cluster.mjs';
import { plotTimeSeries } from './lib/plot.mjs';

const { values: o } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string' },
    'idempotency-ttl': { type: 'string', default: '300' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (o.help) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}
const minutes = Number(o.minutes);
const ttl = Number(o['idempotency-ttl']);
const day = new Date().toISOString().slice(0, 10);
const outDir = o.out ?? join(root, 'bench', 'results', `soak-${day}`);
const log = (line) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);

ensureDependencies();
ensureSystemPackages(['redis-server', 'postgres', 'nginx', 'openssl']);
ensureBuilt();
const { Redis } = await import('ioredis');
const { redisKeys } = await import('../dist/libs/queue/src/index.js');

const cluster = await BenchCluster.inTempFolder('mi-soak-', { apis: 2, writers: 1 });
const { work } = cluster;

const failedRequests = (s) => Object.entries(s?.byStatus ?? {}).filter(([status]) => status === '0' || Number(status) >= 500 || status === '429').reduce((a, [, n]) => a + n, 0);

/** Anonymous resident memory of a process and its children (nginx workers, PostgreSQL backends), in bytes. */
function rssAnon(pid) {
  const of = (p) => {
    try {
      return Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  };
  const children = (p) => {
    try {
      return readdirSync(`/proc/${p}/task`).flatMap((t) => readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      return [];
    }
  };
  let total = 0;
  const seen = new Set();
  const walk = (p) => {
    if (seen.has(p)) return;
    seen.add(p);
    total += of(p);
    for (const c of children(p)) walk(c);
  };
  walk(pid);
  return total;
}

/** Mean of the samples between two fractions of the run, after the warm-up. */
function thirds(samples, key, warmupS) {
  const usable = samples.filter((s) => s.t >= warmupS);
  const span = usable.length ? usable[usable.length - 1].t - warmupS : 0;
  const mean = (from, to) => {
    const part = usable.filter((s) => s.t >= warmupS + from * span && s.t < warmupS + to * span + 1e-9).map((s) => s.values[key]);
    return part.length ? part.reduce((a, b) => a + b, 0) / part.length : Number.NaN;
  };
  return { middle: mean(1 / 3, 2 / 3), last: mean(2 / 3, 1) };
}

let exitCode = 1;
try {
  await cluster.start('queue', { IDEMPOTENCY_TTL_SECONDS: String(ttl) });
  const calibration = [];
  let sustained = o.rate ? Number(o.rate) / 0.7 : undefined;
  if (!sustained) {
    log('finding the sustained rate of the mix: 20 s steps, p99 ≤ 50 ms at the client, no failed request');
    for (const rate of [200, 300, 400, 500, 600, 700, 800, 900]) {
      const { summary } = await cluster.runLoadgen(['--rate', String(rate), '--duration', '20']);
      const ok = summary && summary.latencyMs.p99 <= 50 && failedRequests(summary) === 0 && summary.clientOverloaded === 0;
      calibration.push({ rate, p99Ms: summary?.latencyMs.p99, failed: failedRequests(summary), readingsPerSec: summary ? Math.round(summary.readings.acknowledged / (summary.elapsedMs / 1000)) : 0, ok });
      log(`  ${rate} req/s: p99 ${summary?.latencyMs.p99.toFixed(1)} ms, failed ${failedRequests(summary)} -> ${ok ? 'sustained' : 'not sustained'}`);
      if (!ok) break;
      sustained = rate;
      await sleep(10_000);
    }
  }
  if (!sustained) throw new Error('not even the lowest step was sustained');
  const rate = Math.round(sustained * 0.7);
  await sleep(15_000);
  log(`soak: ${minutes} min at ${rate} req/s (70 % of ${Math.round(sustained)}), idempotency window ${ttl} s`);

  const redis = new Redis(cluster.table().redis.url);
  const table = cluster.table();
  const procs = { redis: table.redis.pid, nginx: table.nginx.pid, ...Object.fromEntries(table.api.map((a) => [a.name, a.pid])), ...Object.fromEntries(table.writers.map((w) => [w.name, w.pid])) };
  const postmaster = Number(readFileSync(join(cluster.dataDir, 'pg-primary', 'postmaster.pid'), 'utf8').split('\n')[0]);
  procs['postgres primary'] = postmaster;
  const samples = [];
  const started = Date.now();
  const load = cluster.runLoadgen(['--rate', String(rate), '--duration', String(minutes * 60), '--verify', '--resolve-indeterminate', '--database-url', cluster.primaryUrl, '--drain-timeout', '120']);
  let running = true;
  void load.then(() => (running = false));
  while (running) {
    const info = await redis.info('memory');
    // Jobs not yet committed: the stream holds exactly those (a committed job is deleted at once).
    const depth = await redis.xlen(redisKeys('mi').stream);
    const values = { redisUsedMemory: Number(/used_memory:(\d+)/.exec(info)[1]), redisKeys: await redis.dbsize(), queueDepthJobs: depth };
    for (const [name, pid] of Object.entries(procs)) values[`rss ${name}`] = rssAnon(pid);
    samples.push({ t: Math.round((Date.now() - started) / 1000), values });
    if (samples.length % 30 === 0) log(`${samples.at(-1).t} s: redis ${(values.redisUsedMemory / 1e6).toFixed(1)} MB, ${values.redisKeys} keys, queue ${depth} jobs`);
    await Promise.race([sleep(10_000), load]);
  }
  const { code, summary } = await load;
  redis.disconnect();

  const warmupS = Math.max(ttl, 300);
  const keys = Object.keys(samples[0].values);
  const flatness = Object.fromEntries(
    keys.map((k) => {
      const { middle, last } = thirds(samples, k, warmupS);
      const growth = middle > 0 ? (last - middle) / middle : 0;
      // No samples after the warm-up (a run shorter than it) proves nothing: not flat.
      const flat = Number.isFinite(middle) && Number.isFinite(last) && (k === 'queueDepthJobs' ? last - middle <= 50 : growth <= 0.1);
      return [k, { middle: Math.round(middle), last: Math.round(last), growthPct: Math.round(growth * 1000) / 10, flat }];
    }),
  );
  const failed = failedRequests(summary);
  const ok = code === 0 && summary?.verify?.ok === true && failed === 0 && Object.values(flatness).every((f) => f.flat);
  const result = { date: new Date().toISOString(), minutes, rate, sustained, idempotencyTtlSeconds: ttl, warmupS, calibration, flatness, failedRequests: failed, ok, loadgen: summary, samples };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'soak.json'), `${JSON.stringify(result, null, 1)}\n`);
  const mb = (b) => (b / 1e6).toFixed(1);
  const colors = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194]];
  const series = (pick, scale) => pick.map((k, i) => ({ name: k.replace(/^rss /, ''), color: colors[i % colors.length], points: samples.map((s) => ({ x: s.t / 60, y: s.values[k] / scale })) }));
  writeFileSync(join(outDir, 'redis-memory.png'), plotTimeSeries({ title: `SOAK: REDIS USED MEMORY (MB), ${rate} REQ/S, WINDOW ${ttl} S`, xLabel: 'MINUTES', yLabel: 'MB', series: series(['redisUsedMemory'], 1e6) }));
  writeFileSync(join(outDir, 'process-memory.png'), plotTimeSeries({ title: 'SOAK: ANONYMOUS RESIDENT MEMORY PER PROCESS (MB)', xLabel: 'MINUTES', yLabel: 'MB', series: series(keys.filter((k) => k.startsWith('rss ')), 1e6) }));
  writeFileSync(join(outDir, 'queue-depth.png'), plotTimeSeries({ title: 'SOAK: QUEUE DEPTH (JOBS WAITING OR ACTIVE)', xLabel: 'MINUTES', yLabel: 'JOBS', series: series(['queueDepthJobs'], 1) }));
  const rows = Object.entries(flatness).map(([k, f]) => `| ${k} | ${k.startsWith('rss') || k === 'redisUsedMemory' ? `${mb(f.middle)} MB` : f.middle} | ${k.startsWith('rss') || k === 'redisUsedMemory' ? `${mb(f.last)} MB` : f.last} | ${f.growthPct} % | ${f.flat ? 'yes' : '**no**'} |`);
  const v = summary?.verify;
  writeFileSync(
    join(outDir, 'soak.md'),
    [
      `# Soak, ${result.date}`,
      '',
      `${minutes} minutes of the load generator's mix at ${rate} requests/s (70 % of the ${Math.round(sustained)} requests/s sustained${calibration.length ? ' in the calibration steps below' : ', given'}), 2 API replicas, 1 writer, idempotency window ${ttl} s. Warm-up excluded from the flatness check: ${warmupS} s.`,
      '',
      summary ? '' : `**The load generator ended without a summary (exit code ${code}): no ledger, so nothing below about requests or readings holds.**\n`,
      `Requests: ${summary?.requests} (${JSON.stringify(summary?.byStatus)}); failed (5xx, 429 or none): ${failed}. Readings acknowledged ${summary?.readings.acknowledged}; ledger: lost ${v?.lost.length}, duplicated ${v?.duplicated.length}, values differ ${v?.valueMismatch.length}, rejected but stored ${v?.rejectedButStored.length}. Latency p50 ${summary?.latencyMs.p50.toFixed(1)} ms, p99 ${summary?.latencyMs.p99.toFixed(1)} ms.`,
      '',
      '| series | mean, middle third | mean, last third | growth | flat |',
      '|---|---|---|---|---|',
      ...rows,
      '',
      calibration.length ? `Calibration: ${calibration.map((c) => `${c.rate}/s p99 ${c.p99Ms?.toFixed(1)} ms${c.ok ? '' : ' (not sustained)'}`).join('; ')}.` : '',
      '',
      `Result: **${ok ? 'passed' : 'failed'}**. Plots: redis-memory.png, process-memory.png, queue-depth.png; samples every 10 s in soak.json.`,
      '',
    ].join('\n'),
  );
  log(`results in ${outDir}: ${ok ? 'PASSED' : 'FAILED'}`);
  for (const r of rows) log(r);
  exitCode = ok ? 0 : 1;
} catch (err) {
  log(`FAILED: ${err.stack ?? err.message}`);
} finally {
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);
