// `npm run bench [-- --quick]`: the full benchmark (docs/PERFORMANCE.md), in one run so the ratios hold on a
// noisy 2-core machine. Starts the real cluster (nginx, API replicas, writers, PostgreSQL primary
// + replica, Redis) on free ports in a temp folder, measures, stops it, and writes
// bench/results/<timestamp>.{json,md,png}:
//   1. ceilings: nginx + API answering 202 doing nothing (INTAKE_MODE=noop), swept by the load
//      generator under the singles' rule and run closed-loop by wrk at 64 connections (the same
//      two clients as the service's figures); PostgreSQL's raw multi-row insert rate for the readings table;
//   1b. a closed loop with wrk at 64 connections against the service as built (a light client beside the generator);
//   2. single submissions: an open-model rate sweep for the highest rate that keeps nginx's p99
//      <= 50 ms with zero errors, zero loss (verified) and the backlog drained within 3 s;
//   3. batches of 500: sustained stored readings/s;
//   4. end-to-end lag (202 -> row visible) on the primary and the replica at half that rate;
//   5. the naive design (INTAKE_MODE=naive: insert per request before answering) under the same rule;
//   6. PostgreSQL CPU seconds per 1,000 stored readings, both designs;
//   7. a spike at 3x the sustained rate; 8. PostgreSQL stopped for 30 s at half the rate.
// CPU per component is recorded for every step.
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, root } from '../scripts/lib/setup.mjs';
import { appendfsyncFromEnv, freePort } from '../scripts/lib/stack.mjs';
import { nginxSettings } from '../scripts/cluster/nginx.mjs';
import { BenchCluster } from './lib/cluster.mjs';
import { componentCpu, cpuDelta, processSnapshot, treeCpuSeconds } from './lib/cpu.mjs';
import { intakeLatency, logSize, percentile, readSlice } from './lib/nginx-log.mjs';
import { plotThroughputLatency } from './lib/plot.mjs';
import { ceilingFailures, DRAIN_LIMIT_MS, errorCount, nextRate, P99_LIMIT_MS, spikeFailures, sustainedFailures } from './lib/rules.mjs';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    api: { type: 'string', default: '2' },
    writers: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    replot: { type: 'string' },
    // `--only rates`: just the fixed-rate profile (a quick before/after for a hot-path change);
    // `--only spike --spike-rate N`: just the spike, at N requests/s (a before/after for shedding).
    only: { type: 'string' },
    'spike-rate': { type: 'string' },
    // The generator's own limit for a spike on this machine (requests/s): one new connection per
    // request to nginx, refusals answered at once. Measured with bench/experiments/refusal-path.mjs
    // (nginx alone, 60 s): 4,000/s refusal p99 7 ms, 5,500/s 56 ms, 7,800/s 246-334 ms.
    'spike-limit': { type: 'string', default: '5000' },
  },
});

const QUICK = opts.quick;
const ONLY_RATES = opts.only === 'rates';
const ONLY_SPIKE = opts.only === 'spike';
if (opts.only !== undefined && !ONLY_RATES && !ONLY_SPIKE) throw new Error(`--only takes "rates" or "spike", not "${opts.only}"`);
const SPIKE_RATE = opts['spike-rate'] === undefined ? undefined : Number(opts['spike-rate']);
if (ONLY_SPIKE && !(SPIKE_RATE > 0)) throw new Error('--only spike needs --spike-rate N (requests/s; 3x the sustained rate of a full run)');
if (!ONLY_SPIKE && SPIKE_RATE !== undefined) throw new Error('--spike-rate goes with --only spike; a full run spikes at 3x its sustained rate or --spike-limit');
if (!(Number(opts['spike-limit']) > 0)) throw new Error(`--spike-limit takes requests/s, not "${opts['spike-limit']}"`);
/**
 * Connections the generator keeps in the keep-alive profiles (HTTP and HTTPS alike): like a few
 * client systems with connection pools, and no storm of new TLS handshakes when latency blips.
 */
const KEEPALIVE_CONNECTIONS = 128;
/** The fixed offered rates of the cost and latency profile, requests/s of single readings. */
const PROFILE_RATES = [300, 1000, 2000];
const plan = QUICK
  ? { ceilingS: 4, ceilingSteps: 3, dbCeiling: [{ batch: 1000, conns: 2 }], stepS: 5, profileS: 5, singleSteps: 3, singleFactor: 1.6, batchSteps: 2, lagS: 6, spikeS: 8, outage: { before: 3, down: 8, after: 5 }, naiveSteps: 3, resolution: 1 }
  : { ceilingS: 15, ceilingSteps: 8, dbCeiling: [{ batch: 500, conns: 2 }, { batch: 1000, conns: 4 }], stepS: 20, profileS: 20, singleSteps: 8, singleFactor: 1.3, batchSteps: 4, lagS: 30, spikeS: 60, outage: { before: 10, down: 30, after: 20 }, naiveSteps: 7, resolution: 0.1 };

const startedAt = new Date();
const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
const resultsDir = join(root, 'bench', 'results');
const work = mkdtempSync(join(tmpdir(), 'mi-bench-'));
// PostgreSQL runs as the postgres user and must reach its data folder inside.
chmodSync(work, 0o755);
const benchLog = join(work, 'bench.log');
const say = (line) => {
  process.stderr.write(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  appendFileSync(benchLog, `${line}\n`);
};

const cluster = new BenchCluster({
  dataDir: join(work, 'cluster'),
  ports: { nginx: await freePort(), pg: await freePort(), replica: await freePort(), redis: await freePort() },
  apis: Number(opts.api),
  writers: Number(opts.writers),
  logFile: join(work, 'supervisor.log'),
});

const result = {
  startedAt: startedAt.toISOString(),
  quick: QUICK,
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  // The effective cap per replica (env or default), so a result file says what it ran with.
  nginxUpstreamMaxConns: nginxSettings().upstreamMaxConns,
  topology: { apiReplicas: Number(opts.api), writers: Number(opts.writers), nginx: 1, postgres: 'primary + streaming replica', redis: `AOF appendfsync ${appendfsyncFromEnv()}` },
  rule: { p99AtNginxMs: P99_LIMIT_MS, drainLimitMs: DRAIN_LIMIT_MS, errors: 0, loss: 0 },
  steps: [],
};

if (opts.replot) {
  // Rebuild the Markdown and the plot of an earlier run from its JSON (after a change to either).
  Object.assign(result, JSON.parse(readFileSync(opts.replot, 'utf8')));
  for (const st of result.steps) if (st.sweep === 'batches') st.sweepPassed ??= st.failures.every((f) => f.startsWith('p99 at nginx'));
  writeFileSync(result.files.png, plot());
  writeFileSync(result.files.md, markdown());
  say(`rewrote ${result.files.md} and ${result.files.png}`);
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

ensureDependencies();
ensureSystemPackages(['redis-server', 'postgres', 'nginx', 'wrk', 'openssl']);
ensureBuilt();
// npm packages only now: on a fresh clone they exist only after ensureDependencies().
const { default: pg } = await import('pg');

/** Every CPU number of a step: each component's delta, plus the generator. */
function cpuWindow(components) {
  const before = componentCpu(components);
  const self = process.cpuUsage();
  return (extraGenerator = 0) => {
    const d = cpuDelta(before, componentCpu(components));
    // A part restarted during the step (the outage drill) took its CPU history with it.
    const now = cluster.components();
    for (const name of Object.keys(components)) if (JSON.stringify(now[name]) !== JSON.stringify(components[name])) d[name] = null;
    const mine = process.cpuUsage(self);
    d.generator = Math.round((extraGenerator + (mine.user + mine.system) / 1e6) * 100) / 100;
    return d;
  };
}

/** Samples the queue depth the API replicas report, for "the backlog stayed bounded". */
function depthSampler() {
  let max = 0;
  let last = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      // A replica's own port: nginx does not serve /metrics (nginx/shared/edge.conf). Every replica
      // reports the same queue depth; the first one that answers is enough.
      const replica = cluster.table()?.api?.[0]?.url;
      const text = replica ? await fetch(`${replica}/metrics`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.text(), () => '') : '';
      const m = /^queue_depth_jobs(?:\{[^}]*\})? (\d+)/m.exec(text);
      if (m) {
        last = Number(m[1]);
        max = Math.max(max, last);
      }
      await sleep(1_000);
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return { maxQueueDepthJobs: max, lastQueueDepthJobs: last };
  };
}

/** One open-model load step through nginx with the project's load generator, verified against the primary. */
async function loadStep(name, { rate, seconds, batchShare = 0, batchSize = 500, drainTimeoutS = 60, during, seed = 4242, maxConnections, verify = true }) {
  const components = cluster.components();
  const logFrom = logSize(cluster.accessLog);
  const stopDepth = depthSampler();
  const window = cpuWindow(components);
  const t0 = performance.now();
  const args = ['dist/apps/loadgen/src/main.js', 'run', '--url', cluster.url, '--rate', String(rate), '--duration', String(seconds), '--batch-share', String(batchShare), '--batch-size', String(batchSize)];
  if (verify) args.push('--verify', '--database-url', cluster.primaryUrl, '--drain-timeout', String(drainTimeoutS));
  args.push('--json', '--seed', String(seed), '--max-in-flight', '20000', '--api-key', cluster.apiKey);
  if (cluster.caFile) args.push('--ca', cluster.caFile);
  if (maxConnections) args.push('--max-connections', String(maxConnections));
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c));
  let cpuLoad;
  let cpuToDrain;
  createInterface({ input: child.stderr }).on('line', (line) => {
    appendFileSync(benchLog, `  ${name}: ${line}\n`);
    if (line.startsWith('load finished')) {
      cpuLoad = window(treeCpuSeconds(processSnapshot(), child.pid));
    }
    if (/^(not )?drained after/.test(line)) {
      // The generator's own CPU (its process tree, cumulative since it started) belongs to the
      // window too, so "generator" in the per-reading figures is its real share.
      cpuToDrain = window(treeCpuSeconds(processSnapshot(), child.pid));
    }
  });
  const exit = new Promise((resolve) => child.once('exit', resolve));
  const extra = during ? await during({ t0 }) : undefined;
  const code = await exit;
  await sleep(1_200); // nginx flushes its access-log buffer every second
  const depth = await stopDepth();
  const out = JSON.parse(stdout || '{}');
  const nginx = intakeLatency(readSlice(cluster.accessLog, logFrom, logSize(cluster.accessLog)));
  const loadS = (out.elapsedMs ?? seconds * 1000) / 1000;
  const v = out.verify;
  const perReading = cpuPerReading(cpuToDrain, v?.stored);
  const step = {
    name,
    mode: cluster.mode,
    intendedRate: rate,
    seconds,
    batchSize: batchShare > 0 ? batchSize : 1,
    achievedRequestsPerSec: out.achievedRequestsPerSec,
    byStatus: out.byStatus,
    errors: errorCount(out.byStatus),
    clientOverloaded: out.clientOverloaded,
    readings: out.readings,
    clientLatencyMs: out.latencyMs,
    acceptedLatencyMs: out.acceptedLatencyMs,
    refusals: out.refusals,
    nginxLatencyMs: { p50: nginx.p50, p99: nginx.p99, max: nginx.max, requests: nginx.requests },
    nginxByStatusMs: nginx.byStatusMs,
    verify: v && { ok: v.ok, acknowledged: v.acknowledged, stored: v.stored, lost: v.lost.length, duplicated: v.duplicated.length, valueMismatch: v.valueMismatch.length, rejectedButStored: v.rejectedButStored.length, unexpected: v.unexpected.length, drained: v.drained, drainMs: v.drainMs },
    storedReadingsPerSec: v ? Math.round(v.stored / loadS) : 0,
    ...depth,
    cpuSecondsDuringLoad: cpuLoad,
    cpuSecondsToDrain: cpuToDrain,
    cpuMsPerStoredReading: perReading,
    // CPU ms per reading is CPU s per 1,000 readings.
    postgresCpuSecondsPer1000Stored: perReading?.['postgres primary'],

    loadgenExit: code,
    ...extra,
  };
  step.failures = verify
    ? sustainedFailures({ nginxP99Ms: nginx.p99, byStatus: out.byStatus, clientOverloaded: out.clientOverloaded, verify: v, readings: out.readings })
    : ceilingFailures({ nginxP99Ms: nginx.p99, byStatus: out.byStatus, clientOverloaded: out.clientOverloaded });
  step.sustained = step.failures.length === 0;
  say(
    `${name}: ${rate}/s intended, ${step.achievedRequestsPerSec}/s achieved, stored ${step.storedReadingsPerSec} readings/s, nginx p99 ${nginx.p99.toFixed(1)} ms, client p99 ${out.latencyMs?.p99?.toFixed(1)} ms, ` +
      `errors ${step.errors}, ${verify ? `verify ${v?.ok ? 'OK' : 'FAILED'}, drain ${v?.drainMs} ms` : 'not verified (noop)'} -> ${step.sustained ? 'sustained' : step.failures.join('; ')}`,
  );
  result.steps.push(step);
  return step;
}

/** 3x the sustained rate for plan.spikeS: judged by spikeFailures (issue 12 item 5). */
async function spikeStep(rate) {
  const step = await loadStep(`spike @ ${rate}/s for ${plan.spikeS} s`, { rate, seconds: plan.spikeS, drainTimeoutS: 600 });
  step.spike = true;
  step.spikeFailures = spikeFailures({ byStatus: step.byStatus, clientOverloaded: step.clientOverloaded, acceptedLatencyMs: step.acceptedLatencyMs, refusals: step.refusals, verify: step.verify, readings: step.readings });
  const r = step.refusals ?? { count: 0, latencyMs: {} };
  say(`spike @ ${rate}/s: ${JSON.stringify(step.byStatus)}; accepted p99 ${step.acceptedLatencyMs?.p99?.toFixed(0)} ms (max ${step.acceptedLatencyMs?.max?.toFixed(0)}); ${r.count} refusals, p99 ${r.latencyMs.p99?.toFixed(1)} ms, ${r.withoutRetryAfter} without Retry-After; generator fell behind ${step.clientOverloaded}; drain ${step.verify?.drainMs} ms -> ${step.spikeFailures.length ? step.spikeFailures.join('; ') : 'shed well'}`);
  return step;
}

function spikeTarget(spike) {
  const r = spike.refusals ?? { count: 0, latencyMs: {} };
  return {
    target: `spike at 3x sustained (or the generator limit) for ${plan.spikeS} s: no 502, none unanswered, refusals 429/503 with Retry-After and p99 <= 250 ms, accepted p99 < 1 s, drained within 60 s, nothing lost`,
    measured: `${spike.intendedRate}/s${spike.spikeRateRule ? ` (${spike.spikeRateRule.rule}; 3x sustained = ${spike.spikeRateRule.threeTimesSustained}/s)` : ''}: ${JSON.stringify(spike.byStatus)}; refusals p99 ${Math.round(r.latencyMs.p99 ?? 0)} ms (${r.withoutRetryAfter ?? '-'} without Retry-After); accepted p99 ${Math.round(spike.acceptedLatencyMs?.p99 ?? 0)} ms; generator fell behind ${spike.clientOverloaded}; verify ${spike.verify?.ok ? 'ok' : 'FAILED'}, drained ${spike.verify?.drainMs} ms after`,
    met: spike.spikeFailures.length === 0,
  };
}

/**
 * CPU milliseconds per stored reading, per component and summed over the cluster (every
 * component but the generator), from the load's start until the backlog drained.
 */
function cpuPerReading(cpu, stored) {
  if (!cpu || !stored) return undefined;
  const out = {};
  for (const [name, seconds] of Object.entries(cpu)) {
    if (typeof seconds === 'number') out[name] = Math.round((seconds / stored) * 1e6) / 1e3;
  }
  out.cluster = Math.round((clusterCpuSeconds(cpu) / stored) * 1e6) / 1e3;
  return out;
}

/** CPU seconds of a window summed over every component but the generator (a restarted one is null). */
function clusterCpuSeconds(cpu) {
  return Object.entries(cpu).reduce((sum, [name, seconds]) => (name !== 'generator' && typeof seconds === 'number' ? sum + seconds : sum), 0);
}

/**
 * What TLS costs: the profile twice more, on clusters restarted with client keep-alive on
 * (NGINX_CLIENT_KEEPALIVE=65s), once over plain HTTP and once over HTTPS (NGINX_TLS=on, the
 * self-signed certificate trusted by the generator with --ca), then back to the default cluster.
 * Keep-alive on for both, and the generator's pool bounded (KEEPALIVE_CONNECTIONS): with one
 * connection per request every HTTPS request pays a handshake, in the generator too, and at
 * 1,000/s that alone saturated this machine (PERFORMANCE.md). The targets are judged on the
 * default profile; this says what TLS adds at equal keep-alive.
 */
async function tlsProfile() {
  const profiles = {};
  for (const [name, env] of [
    ['HTTP', { NGINX_CLIENT_KEEPALIVE: '65s' }],
    ['HTTPS', { NGINX_CLIENT_KEEPALIVE: '65s', NGINX_TLS: 'on' }],
  ]) {
    await cluster.stop();
    await cluster.start('queue', env);
    await loadStep(`warm-up, keep-alive, ${name}`, { rate: 200, seconds: QUICK ? 2 : 5 });
    result.steps.pop();
    profiles[name] = await costProfile({ label: `profile, keep-alive, ${name}`, tls: name === 'HTTPS', keepAlive: true });
  }
  await cluster.stop();
  await cluster.start('queue');
  const figures = PROFILE_RATES.map((rate) => {
    const a = profiles.HTTP.steps.find((x) => x.intendedRate === rate);
    const b = profiles.HTTPS.steps.find((x) => x.intendedRate === rate);
    const ca = a?.cpuMsPerStoredReading;
    const cb = b?.cpuMsPerStoredReading;
    const d = (k) => (ca?.[k] !== undefined && cb?.[k] !== undefined ? (cb[k] - ca[k]).toFixed(3) : '-');
    return [
      `TLS at ${rate}/s (client keep-alive on): HTTPS against plain HTTP`,
      `nginx p50 / p99 ${b?.nginxLatencyMs.p50 ?? '-'} / ${b?.nginxLatencyMs.p99 ?? '-'} ms against ${a?.nginxLatencyMs.p50 ?? '-'} / ${a?.nginxLatencyMs.p99 ?? '-'} ms; cluster CPU ${cb?.cluster ?? '-'} against ${ca?.cluster ?? '-'} ms per stored reading (${d('cluster')}, of which nginx ${d('nginx')}); generator ${d('generator')}; errors ${b?.errors ?? '-'} / ${a?.errors ?? '-'}; verify ${b?.verify?.ok && a?.verify?.ok ? 'ok' : 'FAILED'}`,
    ];
  });
  for (const [k, v] of figures) say(`${k}: ${v}`);
  return { figures };
}

/** Singles at fixed offered rates: latency at nginx and CPU per stored reading, per component. */
async function costProfile({ label = 'profile', tls = false, keepAlive = false } = {}) {
  const steps = [];
  for (const rate of PROFILE_RATES) {
    const step = await loadStep(`${label} @ ${rate}/s`, { rate, seconds: plan.profileS, ...(keepAlive ? { maxConnections: KEEPALIVE_CONNECTIONS } : {}) });
    Object.assign(step, { tls, keepAlive });
    step.profile = true;
    const c = step.cpuMsPerStoredReading;
    say(`${label} @ ${rate}/s: nginx p50 ${step.nginxLatencyMs.p50.toFixed(1)} ms, p99 ${step.nginxLatencyMs.p99.toFixed(1)} ms; cluster CPU ${c?.cluster ?? '-'} ms per stored reading (api ${c?.api ?? '-'}, writer ${c?.writer ?? '-'}, redis ${c?.redis ?? '-'}, nginx ${c?.nginx ?? '-'}, postgres ${c?.['postgres primary'] ?? '-'}); generator ${c?.generator ?? '-'}`);
    steps.push(step);
    await sleep(QUICK ? 500 : 2_000);
  }
  const at = (rate) => steps.find((st) => st.intendedRate === rate);
  const lat = (rate) => at(rate)?.nginxLatencyMs ?? {};
  const cost = (rate) => at(rate)?.cpuMsPerStoredReading?.cluster;
  const fine = (rate) => Boolean(at(rate)?.verify?.ok) && at(rate)?.errors === 0;
  // Says which of the two failed: the ledger (verify) or requests answered 5xx/429/not at all.
  const health = (rate) => `verify ${at(rate)?.verify?.ok ? 'ok' : 'FAILED'}${at(rate)?.errors ? `, ${at(rate).errors} failed requests` : ''}`;
  return {
    steps,
    targets: [
      { target: 'profile @ 300/s: nginx p50 <= 3 ms, p99 <= 15 ms, nothing lost', measured: `p50 ${lat(300).p50} ms, p99 ${lat(300).p99} ms, ${health(300)}`, met: fine(300) && lat(300).p50 <= 3 && lat(300).p99 <= 15 },
      { target: 'profile @ 1,000/s: nginx p99 <= 25 ms, nothing lost', measured: `p99 ${lat(1000).p99} ms, ${health(1000)}`, met: fine(1000) && lat(1000).p99 <= 25 },
      { target: 'profile @ 2,000/s: cluster CPU <= 0.45 ms per stored reading, nothing lost', measured: `${cost(2000) ?? '-'} ms, ${health(2000)}`, met: fine(2000) && cost(2000) !== undefined && cost(2000) <= 0.45 },
    ],
  };
}

async function sweep(label, { start, factor, maxSteps, batchShare = 0, batchSize = 500, rule = (s) => s.sustained, verify = true }) {
  const passed = [];
  const failed = [];
  const steps = [];
  let rate = start;
  while (rate && steps.length < maxSteps) {
    const step = await loadStep(`${label} @ ${rate}/s`, { rate, seconds: plan.stepS, batchShare, batchSize, verify });
    step.sweep = label;
    step.sweepPassed = rule(step);
    (step.sweepPassed ? passed : failed).push(rate);
    steps.push(step);
    rate = nextRate({ passed, failed, factor, resolution: plan.resolution });
    await sleep(QUICK ? 500 : 2_000);
  }
  const best = steps.filter(rule).sort((a, b) => b.intendedRate - a.intendedRate)[0];
  return { steps, best };
}

/**
 * Closed loop with wrk (Debian's, C, far lighter per request than the Node generator): N
 * connections, each sending its next single reading when the last is answered, through nginx
 * into the service as built. Every 2xx is then counted in the primary after the drain (a unique
 * meterId per request), so the figure is of stored readings, not only of answers.
 */
async function wrkClosedLoop(connections, seconds) {
  const run = randomUUID().slice(0, 8);
  const script = join(work, `wrk-${run}.lua`);
  // One body per request with its own meterId; readAt a minute ago, so no reading is in the future.
  writeFileSync(script, `
local n = 0
local readAt = os.date('!%Y-%m-%dT%H:%M:%SZ', os.time() - 60)
request = function()
  n = n + 1
  local body = '{"meterId":"wrk-${run}-' .. n .. '-' .. math.random(1, 1000000000) .. '","readAt":"' .. readAt .. '","values":{"t1":' .. (1000 + n % 1000) .. '}}'
  return wrk.format('POST', '/v1/readings', { ['Content-Type'] = 'application/json', ['Authorization'] = 'Bearer ${cluster.apiKey}' }, body)
end
`);
  const components = cluster.components();
  const window = cpuWindow(components);
  const child = spawn('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--latency', '-s', script, cluster.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  let wrkCpu = 0;
  const sampler = setInterval(() => (wrkCpu = Math.max(wrkCpu, treeCpuSeconds(processSnapshot(), child.pid))), 250);
  const code = await new Promise((resolve) => child.once('exit', resolve));
  clearInterval(sampler);
  const cpu = window(wrkCpu);
  const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re) => {
    const m = re.exec(out);
    if (!m) return NaN;
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 }[m[2]] ?? NaN);
  };
  const total = num(/(\d+) requests in/);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const expected = total - non2xx;
  const noop = cluster.mode === 'noop';
  let stored;
  if (!noop) {
    // Every 2xx must become a row: wait for the writers, then count them.
    const db = new pg.Client({ connectionString: cluster.primaryUrl });
    await db.connect();
    const countStored = async () => Number((await db.query('SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1', [`wrk-${run}-%`])).rows[0].n);
    const deadline = performance.now() + 60_000;
    try {
      while ((await countStored()) < expected && performance.now() < deadline) await sleep(250);
      // Requests still in flight when wrk stopped counting may be answered and stored after it:
      // at most one per connection. Let them land, then count once more.
      await sleep(1_000);
      stored = await countStored();
    } finally {
      await db.end();
    }
  }
  const step = {
    name: `closed loop, wrk, ${connections} connections${noop ? ' (HTTP ceiling: nginx + API answering 202, doing nothing)' : ''}`,
    mode: cluster.mode,
    connections,
    seconds,
    requestsPerSec: Math.round(num(/Requests\/sec:\s+([\d.]+)/)),
    latencyMs: { p50: ms(/50%\s+([\d.]+)(us|ms|s)/), p99: ms(/99%\s+([\d.]+)(us|ms|s)/) },
    requests: total,
    non2xx,
    socketErrors: socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    stored,
    // Every counted 2xx stored; beyond them, at most one reading per connection that wrk sent but
    // stopped counting at its deadline.
    allStored: noop ? undefined : stored >= expected && stored <= expected + connections,
    cpuSecondsDuringLoad: cpu,
    wrkExit: code,
  };
  say(`${step.name}: ${step.requestsPerSec} req/s, p50 ${step.latencyMs.p50} ms, p99 ${step.latencyMs.p99} ms, non-2xx ${non2xx}, socket errors ${step.socketErrors}, ${noop ? 'nothing stored (noop)' : `stored ${stored} rows for ${expected} counted 2xx`}; wrk CPU ${cpu.generator} s, cluster CPU ${clusterCpuSeconds(cpu).toFixed(1)} s`);
  result.steps.push(step);
  return step;
}

/**
 * The HTTP ceiling: nginx and the replicas answering 202 without validating, queueing or
 * storing (INTAKE_MODE=noop; Fastify still parses the JSON), measured by the same clients as the service so the ratios compare like
 * with like: the load generator swept open-model under the same rule as the singles (p99 at
 * nginx, errors, schedule; nothing to verify), and wrk's closed loop at 64 connections.
 */
async function httpCeiling() {
  const wrk = await wrkClosedLoop(64, plan.ceilingS);
  // The closed loop with the light client bounds it from above; the generator pays its own share of the 2 cores.
  const generator = await sweep('ceiling (noop)', { start: Math.round(wrk.requestsPerSec * 0.4), factor: plan.singleFactor, maxSteps: plan.ceilingSteps, verify: false });
  const requestsPerSec = generator.best?.intendedRate ?? 0;
  if (!requestsPerSec) throw new Error('the HTTP ceiling sweep passed no step: nothing to compare the service with (see the ceiling steps above)');
  // The rule counts refusals as failures, and the replicas' own shedding refuses a little near
  // saturation even doing nothing: the range where the ceiling lies by latency alone says how
  // much that moves the figure.
  const byLatency = ceilingByLatency(generator.steps);
  say(`HTTP ceiling: the generator sustains ${requestsPerSec} req/s under the singles' rule (nginx p99 ${generator.best?.nginxLatencyMs.p99 ?? '-'} ms); by latency alone between ${byLatency.atLeast} and ${byLatency.below ?? 'above the steps run'} req/s; wrk's closed loop ${wrk.requestsPerSec} req/s`);
  return { requestsPerSec, byLatency, wrk, generator: generator.best };
}

/** Of the ceiling sweep's steps: the highest that kept p99 and its schedule whatever its refusals, and the lowest that did not. */
function ceilingByLatency(steps) {
  const byLatency = (st) => ceilingFailures({ nginxP99Ms: st.nginxLatencyMs.p99, byStatus: {}, clientOverloaded: st.clientOverloaded }).length === 0;
  const rates = (keep) => steps.filter((st) => byLatency(st) === keep).map((st) => st.intendedRate);
  const below = rates(false).filter((r) => r > Math.max(0, ...rates(true)));
  return { atLeast: Math.max(0, ...rates(true)), below: below.length ? Math.min(...below) : undefined };
}

/** The readings table's raw insert rate: the writer's own multi-row statement, no queue, no flags query, no HTTP. */
async function dbCeiling() {
  const { postgresDialect } = await import(join(root, 'dist/libs/database/src/sql-dialect.js'));
  const best = { rowsPerSec: 0 };
  const variants = [];
  for (const { batch, conns } of plan.dbCeiling) {
    const components = cluster.components();
    const window = cpuWindow(components);
    const clients = await Promise.all(Array.from({ length: conns }, async () => {
      const c = new pg.Client({ connectionString: cluster.primaryUrl });
      await c.connect();
      return c;
    }));
    const readAt = new Date(Date.now() - 60_000).toISOString();
    const template = Array.from({ length: batch }, (_, j) => ({ meterId: `dbceil-${j}`, period: readAt.slice(0, 7), readAt, values: { t1: 1000 + j, t2: 10 }, receivedAt: readAt }));
    let rows = 0;
    const until = performance.now() + plan.ceilingS * 1000;
    const t0 = performance.now();
    await Promise.all(clients.map(async (c) => {
      while (performance.now() < until) {
        const statement = postgresDialect.insertReadings(template.map((r) => ({ reading: { ...r, id: randomUUID() }, flags: [] })));
        rows += (await c.query(statement.text, statement.values)).rowCount;
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = window();
    await Promise.all(clients.map((c) => c.end()));
    const v = { batch, connections: conns, rowsPerSec: Math.round(rows / seconds), postgresCpuSecondsPer1000Rows: Math.round((cpu['postgres primary'] / rows) * 1000 * 1000) / 1000, cpuSecondsDuringLoad: cpu };
    say(`database ceiling: batches of ${batch} on ${conns} connections: ${v.rowsPerSec} rows/s`);
    variants.push(v);
    if (v.rowsPerSec > best.rowsPerSec) Object.assign(best, v);
  }
  const step = { name: 'Database ceiling (raw multi-row insert into readings)', mode: 'direct', rowsPerSec: best.rowsPerSec, best, variants };
  result.steps.push(step);
  return step;
}

/** 202 -> row visible, on the primary and on the replica, for probe readings sent alongside a load. */
function lagProbe({ perSecond, seconds }) {
  const run = randomUUID().slice(0, 8);
  const lags = { primary: [], replica: [] };
  const pending = new Map();
  let sending = true;
  let sent = 0;
  const sender = (async () => {
    const t0 = performance.now();
    for (let i = 0; performance.now() - t0 < seconds * 1000; i++) {
      const due = t0 + (i * 1000) / perSecond;
      if (due > performance.now()) await sleep(due - performance.now());
      sent++;
      void fetch(`${cluster.url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...cluster.authHeader }, body: JSON.stringify({ meterId: `lag-${run}-${i}`, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 100 + i } }) })
        .then(async (res) => {
          const at = performance.now();
          if (res.status === 202) pending.set((await res.json()).id, { at, seen: { primary: false, replica: false } });
        })
        .catch(() => undefined);
    }
    await sleep(300);
    sending = false;
  })();
  const poll = async (which, url) => {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    const deadline = () => !sending && performance.now() > stopAt;
    let stopAt = Infinity;
    try {
      while (!deadline()) {
        if (!sending && stopAt === Infinity) stopAt = performance.now() + 10_000;
        const waiting = [...pending.entries()].filter(([, p]) => !p.seen[which]).map(([id]) => id);
        if (waiting.length === 0) {
          if (!sending) break;
          await sleep(2);
          continue;
        }
        const { rows } = await db.query('SELECT id::text AS id FROM readings WHERE id = ANY($1::uuid[])', [waiting]);
        const now = performance.now();
        for (const { id } of rows) {
          const p = pending.get(id);
          p.seen[which] = true;
          lags[which].push(Math.max(0, now - p.at));
        }
        await sleep(2);
      }
    } finally {
      await db.end();
    }
  };
  return Promise.all([sender, poll('primary', cluster.primaryUrl), poll('replica', cluster.replicaUrl)]).then(() => {
    const stats = (xs) => {
      const s = [...xs].sort((a, b) => a - b);
      return { samples: s.length, p50: Math.round(percentile(s, 50) * 10) / 10, p99: Math.round(percentile(s, 99) * 10) / 10, max: Math.round((s.at(-1) ?? 0) * 10) / 10 };
    };
    return { probesSent: sent, probesAcknowledged: pending.size, lagToPrimaryMs: stats(lags.primary), lagToReplicaMs: stats(lags.replica) };
  });
}

function markdown() {
  const s = result.summary;
  const fmt = (x, d = 0) => (x === undefined || x === null || Number.isNaN(x) ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  const lines = [];
  lines.push(`# Benchmark ${result.startedAt}${QUICK ? ' (--quick)' : ''}`, '');
  lines.push(`${result.machine.cpus} CPUs (${result.machine.model}), Node ${result.machine.node}; ${result.topology.apiReplicas} API replicas, ${result.topology.writers} writer(s), nginx, PostgreSQL primary + replica, Redis, and the generator, all on this machine. Took ${fmt(result.durationS)} s.`, '');
  lines.push('## Against the targets', '', '| target | measured | met |', '|---|---|---|');
  for (const t of s.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`);
  lines.push('', '## Headline figures', '', '| figure | value |', '|---|---|');
  for (const [k, v] of s.figures) lines.push(`| ${k} | ${v} |`);
  lines.push('', '## Every step', '', '| step | intended /s | achieved req/s | stored readings/s | nginx p50 / p99 / max ms | client p99 ms | errors | verified | drain ms | max queue jobs | PG CPU s per 1k stored | sustained |', '|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const st of result.steps.filter((x) => x.intendedRate)) {
    lines.push(`| ${st.name} | ${fmt(st.intendedRate)} | ${fmt(st.achievedRequestsPerSec)} | ${fmt(st.storedReadingsPerSec)} | ${fmt(st.nginxLatencyMs.p50, 1)} / ${fmt(st.nginxLatencyMs.p99, 1)} / ${fmt(st.nginxLatencyMs.max, 1)} | ${fmt(st.clientLatencyMs?.p99, 1)} | ${st.errors} | ${!st.verify ? 'not verified (noop)' : st.verify.ok ? `ok (${fmt(st.verify.stored)} rows)` : `**no** (lost ${st.verify.lost}, dup ${st.verify.duplicated})`} | ${fmt(st.verify?.drainMs)} | ${fmt(st.maxQueueDepthJobs)} | ${fmt(st.postgresCpuSecondsPer1000Stored, 3)} | ${st.spikeFailures ? (st.spikeFailures.length ? `spike: ${st.spikeFailures.join('; ')}` : 'spike: shed well') : (st.sweepPassed ?? st.sustained) ? (st.sustained ? 'yes' : 'yes (no latency rule for batches)') : st.failures.join('; ')} |`);
  }
  const profile = result.steps.filter((x) => x.profile);
  if (profile.length) {
    const parts = ['api', 'writer', 'redis', 'nginx', 'postgres primary', 'postgres replica'];
    lines.push('', '## Cost and latency profile (singles at fixed rates)', '', 'CPU milliseconds per stored reading, from the start of the load until the backlog drained; "cluster" sums every component, the generator excluded.', '');
    lines.push(`| offered /s | over | achieved /s | nginx p50 / p99 / max ms | cluster | ${parts.join(' | ')} | generator | verified |`, `|---|---|---|---|---|${parts.map(() => '---').join('|')}|---|---|`);
    for (const st of profile) {
      const c = st.cpuMsPerStoredReading ?? {};
      lines.push(`| ${fmt(st.intendedRate)} | ${st.tls ? 'HTTPS' : 'HTTP'}${st.keepAlive ? ', keep-alive' : ''} | ${fmt(st.achievedRequestsPerSec)} | ${fmt(st.nginxLatencyMs.p50, 1)} / ${fmt(st.nginxLatencyMs.p99, 1)} / ${fmt(st.nginxLatencyMs.max, 1)} | ${fmt(c.cluster, 3)} | ${parts.map((n) => fmt(c[n], 3)).join(' | ')} | ${fmt(c.generator, 3)} | ${st.verify?.ok ? `ok (${fmt(st.verify.stored)} rows)` : '**no**'} |`);
    }
  }
  lines.push('', '## CPU seconds per component during each step', '');
  const names = ['nginx', 'api', 'writer', 'redis', 'postgres primary', 'postgres replica', 'generator'];
  lines.push(`| step | ${names.join(' | ')} |`, `|---|${names.map(() => '---').join('|')}|`);
  for (const st of result.steps) {
    const cpu = st.cpuSecondsDuringLoad ?? st.best?.cpuSecondsDuringLoad;
    if (cpu) lines.push(`| ${st.name} | ${names.map((n) => fmt(cpu[n], 2)).join(' | ')} |`);
  }
  if (result.files.png) lines.push('', `Plot: ${result.files.png}`, '');
  return lines.join('\n');
}

function plot() {
  const point = (st) => ({ x: st.batchSize > 1 ? st.storedReadingsPerSec : st.achievedRequestsPerSec, y: Math.max(st.nginxLatencyMs.p99, 0.1), ok: st.sweepPassed ?? st.sustained });
  const series = [
    { name: 'queue singles', color: [0, 90, 200], points: result.steps.filter((x) => x.sweep === 'singles').map(point) },
    { name: 'naive singles', color: [220, 110, 0], points: result.steps.filter((x) => x.sweep === 'naive').map(point) },
    { name: 'batches of 500', color: [0, 150, 70], points: result.steps.filter((x) => x.sweep === 'batches').map(point) },
    { name: 'http ceiling (noop)', color: [120, 120, 120], points: result.steps.filter((x) => x.sweep === 'ceiling (noop)').map(point) },
  ];
  return plotThroughputLatency({
    title: `METER-INTAKE ${result.startedAt.slice(0, 16)}${QUICK ? ' QUICK' : ''}: THROUGHPUT VS P99 AT NGINX`,
    xLabel: 'REQUESTS/S (SINGLES) OR STORED READINGS/S (BATCHES)',
    yLabel: 'P99 MS AT NGINX',
    series,
    vlines: [
      { name: 'http ceiling', x: result.ceilings.httpRequestsPerSec, color: [120, 120, 120] },
      { name: 'db ceiling', x: result.ceilings.databaseRowsPerSec, color: [150, 0, 150] },
    ],
    hline: { name: `rule: p99 ${P99_LIMIT_MS} ms`, y: P99_LIMIT_MS },
  });
}

// Ctrl-C: stop the cluster (nginx, replicas, writers, PostgreSQL, Redis) rather than orphan it.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    say(`${signal}: stopping the cluster; no results are written`);
    void cluster.stop().finally(() => process.exit(130));
  });
}

let exitCode = 0;
try {
  say(`work folder ${work}; ${QUICK ? 'quick' : 'full'} run${ONLY_RATES ? ', the cost and latency profile only' : ''}${ONLY_SPIKE ? `, the spike only (${SPIKE_RATE}/s)` : ''}; nginx max_conns per replica ${result.nginxUpstreamMaxConns || 'none'}`);
  result.settings = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(NGINX_|SHED_|COALESCE_|INTAKE_|LOG_|REDIS_APPENDFSYNC|BACKLOG_)/.test(k)));
  if (ONLY_RATES) {
    await cluster.start('queue');
    await loadStep('warm-up', { rate: 200, seconds: QUICK ? 2 : 5 });
    result.steps.pop();
    const profile = await costProfile();
    const tls = await tlsProfile();
    await cluster.stop();
    result.summary = { targets: profile.targets, figures: tls.figures };
  } else if (ONLY_SPIKE) {
    await cluster.start('queue');
    await loadStep('warm-up', { rate: 200, seconds: QUICK ? 2 : 5 });
    result.steps.pop();
    const spike = await spikeStep(SPIKE_RATE);
    await cluster.stop();
    result.summary = { targets: [spikeTarget(spike)], figures: [] };
  } else {
    // 1. Ceilings.
    await cluster.start('noop');
    const http = await httpCeiling();
    const db = await dbCeiling();
    result.ceilings = { httpRequestsPerSec: http.requestsPerSec, httpClosedLoopWrkRequestsPerSec: http.wrk.requestsPerSec, databaseRowsPerSec: db.rowsPerSec };
    await cluster.stop();

    // 2-4, 7, 8: the service as built.
    await cluster.start('queue');
    await loadStep('warm-up', { rate: Math.round(http.requestsPerSec * 0.1), seconds: QUICK ? 2 : 5 });
    result.steps.pop();
    const profile = await costProfile();
    const tls = await tlsProfile();
    await loadStep('warm-up', { rate: Math.round(http.requestsPerSec * 0.1), seconds: QUICK ? 2 : 5 });
    result.steps.pop();
    // The default cluster again (tlsProfile restarted it) under a light closed-loop client, beside the generator's figures (issue 12 item 4).
    const wrk = await wrkClosedLoop(64, plan.stepS);
    await sleep(QUICK ? 500 : 2_000);
    const singles = await sweep('singles', { start: Math.round(http.requestsPerSec * 0.4), factor: plan.singleFactor, maxSteps: plan.singleSteps });
    const sustained = singles.best;
    const sustainedRate = sustained?.intendedRate ?? Math.min(...singles.steps.map((x) => x.intendedRate));
    const batches = await sweep('batches', {
      start: Math.max(1, Math.round((db.rowsPerSec * 0.5) / 500)),
      factor: 1.25,
      maxSteps: plan.batchSteps,
      batchShare: 1,
      batchSize: 500,
      // Batches have no latency target: sustained means no errors, nothing lost, and the backlog drained.
      rule: (st) => st.failures.every((f) => f.startsWith('p99 at nginx')),
    });

    const half = Math.max(1, Math.round(sustainedRate / 2));
    const lagStep = await loadStep(`lag at half rate @ ${half}/s`, { rate: half, seconds: plan.lagS, during: () => lagProbe({ perSecond: 20, seconds: plan.lagS }) });
    say(`lag: primary p50 ${lagStep.lagToPrimaryMs.p50} ms p99 ${lagStep.lagToPrimaryMs.p99} ms; replica p50 ${lagStep.lagToReplicaMs.p50} ms p99 ${lagStep.lagToReplicaMs.p99} ms`);

    // 3x the sustained rate, or the generator's own limit if that is lower (issue 12 item 5).
    const spikeLimit = Number(opts['spike-limit']);
    const spikeRate = Math.min(sustainedRate * 3, spikeLimit);
    const spikeRateRule = { rule: spikeRate < sustainedRate * 3 ? 'generator limit' : '3x sustained', threeTimesSustained: sustainedRate * 3, limit: spikeLimit };
    say(`spike at ${spikeRate}/s: ${spikeRateRule.rule} (3x the sustained rate is ${spikeRateRule.threeTimesSustained}/s, --spike-limit ${spikeLimit}/s)`);
    const spike = await spikeStep(spikeRate);
    spike.spikeRateRule = spikeRateRule;
    await sleep(2_000);

    const o = plan.outage;
    const outage = await loadStep(`database outage ${o.down} s @ ${half}/s`, {
      rate: half,
      seconds: o.before + o.down + o.after,
      drainTimeoutS: 600,
      during: async ({ t0 }) => {
        await sleep(o.before * 1000 - (performance.now() - t0));
        await cluster.control('POST', '/stop/postgres');
        const stoppedAtS = (performance.now() - t0) / 1000;
        say(`outage: PostgreSQL primary stopped at ${stoppedAtS.toFixed(1)} s`);
        await sleep((o.before + o.down) * 1000 - (performance.now() - t0));
        await cluster.control('POST', '/start/postgres');
        const restartedAtS = (performance.now() - t0) / 1000;
        say(`outage: PostgreSQL primary started again at ${restartedAtS.toFixed(1)} s`);
        return { outage: { stoppedAtS, restartedAtS } };
      },
    });
    await cluster.stop();

    // 5-6: the naive design through the same nginx and PostgreSQL.
    await cluster.start('naive');
    const naive = await sweep('naive', { start: Math.max(10, Math.round(sustainedRate * 0.3)), factor: plan.singleFactor, maxSteps: plan.naiveSteps });
    await cluster.stop();

    // The summary against the issue's targets.
    const storedRate = sustained?.storedReadingsPerSec ?? 0;
    const naiveRate = naive.best?.storedReadingsPerSec ?? 0;
    const batchBest = batches.best?.storedReadingsPerSec ?? 0;
    const ourCost = sustained?.postgresCpuSecondsPer1000Stored;
    const naiveCost = naive.best?.postgresCpuSecondsPer1000Stored;
    const pct = (a, b) => (b ? `${((a / b) * 100).toFixed(0)} %` : '-');
    const outageStep = outage;
    const drainAfterRestartS = outageStep.verify ? (outageStep.seconds * 1000 + outageStep.verify.drainMs) / 1000 - outageStep.outage.restartedAtS : undefined;
    outageStep.drainAfterRestartS = drainAfterRestartS && Math.round(drainAfterRestartS * 10) / 10;
    const outageAcked = outageStep.byStatus?.['202'] ?? 0;
    result.summary = {
      sustainedSingleRequestsPerSec: sustained?.intendedRate,
      sustainedSingleStoredReadingsPerSec: storedRate,
      naiveSustainedStoredReadingsPerSec: naiveRate,
      batchStoredReadingsPerSec: batchBest,
      postgresCpuSecondsPer1000: { queue: ourCost, naive: naiveCost },
      lag: { primary: lagStep.lagToPrimaryMs, replica: lagStep.lagToReplicaMs },
      spike: { rate: spike.intendedRate, byStatus: spike.byStatus, maxLatencyMs: spike.clientLatencyMs?.max, verified: spike.verify?.ok, drainMs: spike.verify?.drainMs },
      outage: { byStatus: outageStep.byStatus, verified: outageStep.verify?.ok, drainAfterRestartS },
      targets: [
        ...profile.targets,
        {
          target: 'singles sustained >= 50 % of the HTTP ceiling (both swept by the load generator under the same rule)',
          measured: `${sustainedRate} req/s (${storedRate} readings stored/s) vs ${http.requestsPerSec} req/s = ${pct(sustainedRate, http.requestsPerSec)} (against the ceiling by latency alone, ${http.byLatency.atLeast}-${http.byLatency.below ?? '?'} req/s: ${pct(sustainedRate, http.byLatency.below ?? http.byLatency.atLeast)}-${pct(sustainedRate, http.byLatency.atLeast)})`,
          met: Boolean(sustained) && http.requestsPerSec > 0 && sustainedRate >= 0.5 * http.requestsPerSec,
        },
        { target: 'singles sustained >= 2x the naive design', measured: `${storedRate} vs ${naiveRate} stored/s = ${naiveRate ? (storedRate / naiveRate).toFixed(2) : '-'}x`, met: naiveRate > 0 && storedRate >= 2 * naiveRate },
        { target: 'batches >= 60 % of the database ceiling', measured: `${batchBest} vs ${db.rowsPerSec} rows/s = ${pct(batchBest, db.rowsPerSec)}`, met: batchBest >= 0.6 * db.rowsPerSec },
        { target: 'PostgreSQL CPU per stored reading <= 1/5 of naive', measured: `${ourCost} vs ${naiveCost} s per 1,000 = ${ourCost && naiveCost ? `1/${(naiveCost / ourCost).toFixed(1)}` : '-'}`, met: Boolean(ourCost && naiveCost && ourCost * 5 <= naiveCost) },
        { target: 'lag p99 to the primary at half load <= 100 ms', measured: `${lagStep.lagToPrimaryMs.p99} ms (replica ${lagStep.lagToReplicaMs.p99} ms)`, met: lagStep.lagToPrimaryMs.samples > 0 && lagStep.lagToPrimaryMs.p99 <= 100 },
        spikeTarget(spike),
        { target: 'database outage: 202s continue, nothing lost', measured: `${outageAcked} acknowledged, ${JSON.stringify(outageStep.byStatus)}, verify ${outageStep.verify?.ok ? 'ok' : 'FAILED'}, drained ${outageStep.drainAfterRestartS} s after restart`, met: Boolean(outageStep.verify?.ok) && errorCount(outageStep.byStatus) === 0 },
      ],
      figures: [
        ...tls.figures,
        ['HTTP ceiling, load generator (open model, p99 at nginx <= 50 ms, no error)', `${http.requestsPerSec} req/s, nginx p99 ${http.generator?.nginxLatencyMs.p99 ?? '-'} ms`],
        ['HTTP ceiling, closed loop with wrk, 64 connections', `${http.wrk.requestsPerSec} req/s, p50 ${http.wrk.latencyMs.p50} ms, p99 ${http.wrk.latencyMs.p99} ms; wrk CPU ${http.wrk.cpuSecondsDuringLoad.generator} s in ${http.wrk.seconds} s`],
        ['closed loop with wrk: the service against the HTTP ceiling', pct(wrk.requestsPerSec, http.wrk.requestsPerSec)],
        ['database ceiling', `${db.rowsPerSec} rows/s (batches of ${db.best.batch}, ${db.best.connections} connections)`],
        ['singles sustained (queue)', `${sustained?.intendedRate ?? '-'} req/s, ${storedRate} readings stored/s, nginx p99 ${sustained?.nginxLatencyMs.p99 ?? '-'} ms`],
        ['closed loop with wrk, 64 connections (service as built)', `${wrk.requestsPerSec} req/s, p50 ${wrk.latencyMs.p50} ms, p99 ${wrk.latencyMs.p99} ms, ${wrk.non2xx} non-2xx, ${wrk.allStored ? `every 2xx stored (${wrk.stored} rows for ${wrk.requests - wrk.non2xx} counted 2xx, the rest in flight at wrk's deadline)` : `**${wrk.stored} rows for ${wrk.requests - wrk.non2xx} counted 2xx**`}; wrk CPU ${wrk.cpuSecondsDuringLoad.generator} s in ${wrk.seconds} s`],
        ['generator share of the CPU at the sustained singles step', sustained?.cpuSecondsDuringLoad ? pct(sustained.cpuSecondsDuringLoad.generator, sustained.cpuSecondsDuringLoad.generator + clusterCpuSeconds(sustained.cpuSecondsDuringLoad)) : '-'],
        ['singles sustained (naive)', `${naive.best?.intendedRate ?? '-'} req/s, ${naiveRate} readings stored/s, nginx p99 ${naive.best?.nginxLatencyMs.p99 ?? '-'} ms`],
        ['batches of 500 sustained', `${batchBest} readings stored/s`],
        ['lag 202 -> primary (p50 / p99)', `${lagStep.lagToPrimaryMs.p50} / ${lagStep.lagToPrimaryMs.p99} ms`],
        ['lag 202 -> replica (p50 / p99)', `${lagStep.lagToReplicaMs.p50} / ${lagStep.lagToReplicaMs.p99} ms`],
        ['PostgreSQL CPU s per 1,000 stored', `queue ${ourCost ?? '-'}, naive ${naiveCost ?? '-'}`],
      ],
    };
  }
} catch (err) {
  exitCode = 1;
  say(`benchmark failed: ${err.stack ?? err}`);
  result.error = String(err);
} finally {
  await cluster.stop().catch(() => undefined);
  result.durationS = Math.round((Date.now() - startedAt.getTime()) / 1000);
  mkdirSync(resultsDir, { recursive: true });
  const base = join(resultsDir, `${stamp}${QUICK ? '-quick' : ''}`);
  const suffix = ONLY_RATES ? '-rates' : ONLY_SPIKE ? '-spike' : '';
  result.files = { json: `${base}${suffix}.json`, md: `${base}${suffix}.md`, ...(ONLY_RATES || ONLY_SPIKE ? {} : { png: `${base}.png` }) };
  writeFileSync(result.files.json, JSON.stringify(result, null, 2));
  if (result.summary) {
    if (result.files.png) writeFileSync(result.files.png, plot());
    const md = markdown();
    writeFileSync(result.files.md, md);
    console.log(md);
  }
  say(`results: ${[result.files.json, ...(result.summary ? [result.files.md, result.files.png].filter(Boolean) : [])].join(', ')} (${result.durationS} s)`);
  if (opts.keep || exitCode) say(`kept the work folder for inspection: ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);
