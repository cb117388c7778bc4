// Open-model load generator for meter-intake: constant (or shaped) arrival rate, latency from
// each request's intended send time, a ledger of every reading's outcome, and --verify to check
// the database against that ledger.
//   node dist/apps/loadgen/src/main.js --url http://127.0.0.1:8080 --rate 500 --duration 30 --verify --database-url postgres://…
//   node dist/apps/loadgen/src/main.js verify --ledger run.jsonl --database-url postgres://…
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { HttpClient } from './http-client.js';
import { Ledger, type LedgerReading, outcomeOf } from './ledger.js';
import { arrivals, expectedRequests, LOAD_MODES, type LoadMode, type LoadProfile } from './schedule.js';
import { type MeterReading, TrafficModel } from './traffic.js';
import { type StoredRow, verifyAgainstRows, type VerifyReport } from './verify.js';

const USAGE = `usage: loadgen [run] --url URL --rate R --duration S [options]
       loadgen verify --ledger FILE --database-url URL [--run-id ID]
  --mode regular|peak|night|ramp|step   arrival profile (default regular)
  --rate R             base arrival rate, requests/s (default 100)
  --duration S         seconds (default 10)
  --batch-share F      share of requests that are AMI batches (default 0.1)
  --batch-size N       readings per batch (default 100)
  --meters N           meter population (default 1000000)
  --two-rate F / --three-rate F   shares of two- and three-rate meters (default 0.3 / 0.1)
  --invalid F          share of invalid payloads (default 0.05)
  --resend F           share of resends with the same idempotency key (default 0.01)
  --max-in-flight N    requests in flight before the generator counts itself overloaded (default 5000)
  --max-connections N  connections at most (default: --max-in-flight); past it requests wait for
                       a free one, their latency still counted from the intended send time
  --seed N             PRNG seed (default: random)
  --resolve-indeterminate  after the run, resend every valid reading whose answer was a 5xx or
                       none, with its own key, until each gets a definite answer (bounded by
                       --resolve-timeout S, default 120): a resend converges on the same id
  --verify             after the run, wait for the queue to drain and check the database
  --database-url URL   primary to verify against (or DATABASE_URL)
  --drain-timeout S    bound on the wait for the writers (default 120)
  --ledger FILE        write (run) or read (verify) the ledger as JSON lines
  --ca FILE            a certificate to trust for an https:// URL (the cluster's self-signed
                       one: its process table names it), besides the system's
  --api-key KEY        the client key sent as Authorization: Bearer (or MI_API_KEY); the
                       client needs the submit scope
  --metrics-url URL    a replica's /metrics (its own port; nginx does not serve it), for the
                       queue depth in the progress lines ("?" without it)
  --json               print the summary as JSON on stdout
  --quiet              no progress lines`;

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    mode: { type: 'string', default: 'regular' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string', default: '10' },
    'batch-share': { type: 'string', default: '0.1' },
    'batch-size': { type: 'string', default: '100' },
    meters: { type: 'string', default: '1000000' },
    'two-rate': { type: 'string', default: '0.3' },
    'three-rate': { type: 'string', default: '0.1' },
    invalid: { type: 'string', default: '0.05' },
    resend: { type: 'string', default: '0.01' },
    'max-in-flight': { type: 'string', default: '5000' },
    seed: { type: 'string' },
    'run-id': { type: 'string' },
    verify: { type: 'boolean', default: false },
    'resolve-indeterminate': { type: 'boolean', default: false },
    'resolve-timeout': { type: 'string', default: '120' },
    'database-url': { type: 'string', default: process.env.DATABASE_URL },
    'metrics-url': { type: 'string' },
    'api-key': { type: 'string', default: process.env.MI_API_KEY },
    'max-connections': { type: 'string' },
    ca: { type: 'string' },
    'drain-timeout': { type: 'string', default: '120' },
    ledger: { type: 'string' },
    json: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function num(name: keyof typeof o, min: number, max: number): number {
  const v = Number(o[name]);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`--${name} must be a number from ${min} to ${max}`);
    process.exit(2);
  }
  return v;
}

const progress = (line: string) => {
  if (!o.quiet) process.stderr.write(`${line}\n`);
};

async function queueDepth(metricsUrl: string | undefined): Promise<number | undefined> {
  if (!metricsUrl) return undefined;
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(1_000) });
  const m = /^queue_depth_jobs(?:\{[^}]*\})? (\d+)/m.exec(await res.text());
  return m ? Number(m[1]) : undefined;
}

async function fetchRows(databaseUrl: string, runId: string): Promise<StoredRow[]> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string; meter_id: string; read_at: Date; t1: string; t2: string | null; t3: string | null }>(
      `SELECT id::text, meter_id, read_at, t1::text, t2::text, t3::text FROM readings WHERE meter_id LIKE $1`,
      [`lg-${runId}-%`],
    );
    return rows.map((r) => ({ id: r.id, meterId: r.meter_id, readAt: r.read_at.toISOString(), t1: Number(r.t1), t2: r.t2 === null ? null : Number(r.t2), t3: r.t3 === null ? null : Number(r.t3) }));
  } finally {
    await db.end();
  }
}

async function countRows(databaseUrl: string, runId: string): Promise<number> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM readings WHERE meter_id LIKE $1`, [`lg-${runId}-%`]);
    return rows[0]?.n ?? 0;
  } finally {
    await db.end();
  }
}

/**
 * Waits (bounded) until every acknowledged reading has a row and the row count is stable.
 * Polls with a count, not the rows, so waiting adds little to the database's load.
 */
async function waitForDrain(databaseUrl: string, runId: string, acknowledged: number, timeoutMs: number): Promise<{ drained: boolean; ms: number }> {
  const started = Date.now();
  let last = -1;
  while (Date.now() - started < timeoutMs) {
    const stored = await countRows(databaseUrl, runId).catch(() => -1);
    if (stored >= acknowledged && stored === last) return { drained: true, ms: Date.now() - started };
    last = stored;
    await sleep(stored >= acknowledged ? 100 : 250);
  }
  return { drained: false, ms: Date.now() - started };
}

function printReport(report: VerifyReport): void {
  progress(
    `verify: acknowledged ${report.acknowledged}, stored ${report.stored}, lost ${report.lost.length}, duplicated ${report.duplicated.length}, ` +
      `value mismatches ${report.valueMismatch.length}, rejected but stored ${report.rejectedButStored.length}, rows nobody sent ${report.unexpected.length} -> ${report.ok ? 'OK' : 'FAILED'}`,
  );
}

async function verifyCommand(): Promise<void> {
  if (!o.ledger || !o['database-url']) {
    console.error('verify needs --ledger FILE and --database-url URL');
    process.exit(2);
  }
  const readings: LedgerReading[] = [];
  let runId = o['run-id'];
  for await (const line of createInterface({ input: createReadStream(o.ledger) })) {
    if (!line) continue;
    const entry = JSON.parse(line) as LedgerReading & { runId?: string };
    if (entry.runId) runId ??= entry.runId;
    else readings.push(entry);
  }
  if (!runId) throw new Error('the ledger names no run id; pass --run-id');
  const report = verifyAgainstRows(readings, await fetchRows(o['database-url'], runId));
  printReport(report);
  if (o.json) console.log(JSON.stringify({ runId, verify: report }, null, 2));
  process.exit(report.ok ? 0 : 1);
}

/**
 * The ledger's third rule: an indeterminate answer (5xx, none) is resolved by resending the same
 * reading with the same key until the answer is definite. A single is resent as it was; a batch
 * item as a single whose Idempotency-Key is its submissionId, which names the same reading id.
 * 429 and 5xx are tried again every 2 s, within `timeoutMs`.
 */
async function resolveIndeterminate(client: HttpClient, ledger: Ledger, bodies: Map<LedgerReading, string>, timeoutMs: number) {
  const open = ledger.readings.filter((r) => r.valid && r.outcome === 'indeterminate');
  // A 4xx to a resend is not "rejected": the first attempt may be stored. It stays indeterminate
  // and is counted, since a valid reading resent with its own key should never get one.
  const result = { resent: open.length, acknowledged: 0, refusedOnResend: 0, stillIndeterminate: 0, rounds: 0 };
  if (open.length === 0) return result;
  progress(`resolving ${open.length} indeterminate readings by resending each with its own key`);
  const deadline = Date.now() + timeoutMs;
  let left = open;
  while (left.length > 0 && Date.now() < deadline) {
    result.rounds++;
    const again: LedgerReading[] = [];
    for (let i = 0; i < left.length; i += 32) {
      await Promise.all(
        left.slice(i, i + 32).map(async (reading) => {
          const res = await client.send('POST', '/v1/readings', bodies.get(reading), { 'idempotency-key': reading.key });
          if (res.status === 201 || res.status === 202) {
            reading.id = (JSON.parse(res.body) as { id: string }).id;
            reading.outcome = 'acknowledged';
            result.acknowledged++;
          } else if (res.status >= 400 && res.status < 500 && res.status !== 429) {
            result.refusedOnResend++;
          } else {
            again.push(reading);
          }
        }),
      );
    }
    left = again;
    if (left.length > 0) await sleep(2_000);
  }
  result.stillIndeterminate = left.length;
  progress(`resolution: ${result.acknowledged} acknowledged, ${result.refusedOnResend} refused (4xx), ${result.stillIndeterminate} still indeterminate after ${result.rounds} rounds`);
  return result;
}

async function runCommand(): Promise<void> {
  if (!LOAD_MODES.includes(o.mode as LoadMode)) {
    console.error(`--mode must be one of ${LOAD_MODES.join(', ')}`);
    process.exit(2);
  }
  const profile: LoadProfile = { mode: o.mode as LoadMode, rate: num('rate', 0.1, 1_000_000), durationMs: num('duration', 0.1, 86_400) * 1000 };
  const batchShare = num('batch-share', 0, 1);
  const batchSize = num('batch-size', 1, 10_000);
  const resendShare = num('resend', 0, 1);
  const maxInFlight = num('max-in-flight', 1, 1_000_000);
  const runId = o['run-id'] ?? randomUUID().slice(0, 8);
  const seed = o.seed ? Number(o.seed) : Math.floor(Math.random() * 2 ** 31);
  const model = new TrafficModel({
    runId,
    meters: num('meters', 1, 100_000_000),
    twoRateShare: num('two-rate', 0, 1),
    threeRateShare: num('three-rate', 0, 1),
    invalidShare: num('invalid', 0, 1),
    seed,
  });
  // Fewer connections than requests in flight: with TLS every new connection is a handshake in
  // this process too, and an unbounded pool turns a latency blip into a storm of them.
  const maxConnections = o['max-connections'] === undefined ? maxInFlight : num('max-connections', 1, 1_000_000);
  const client = new HttpClient(o.url, maxConnections, 30_000, o['api-key'] ? { authorization: `Bearer ${o['api-key']}` } : {}, o.ca ? readFileSync(o.ca) : undefined);
  // A load against nothing would only fill the ledger with "no answer": say so once instead.
  const probe = await client.send('GET', '/health/live');
  if (probe.status === 0) {
    client.close();
    const why = client.lastError ?? 'no answer';
    console.error(/certificate|self[- ]signed|tls|ssl/i.test(why) ? `${o.url} answers, but not over TLS this generator trusts (${why}): pass --ca FILE` : `nothing answers at ${o.url}: no cluster is running there (start one with npm start, or pass --url)`);
    process.exit(1);
  }
  // Every request needs a client key: without a working one the whole run would be 401s.
  const keyProbe = await client.send('POST', '/v1/readings/batch', '{}');
  if (keyProbe.status === 401 || keyProbe.status === 403) {
    client.close();
    const why = o['api-key'] ? `the key was refused (${keyProbe.status}: it needs the submit scope)` : 'no client key given';
    console.error(`${why}: pass --api-key KEY or set MI_API_KEY (create one with: npm run clients -- create --name loadgen --scopes submit,read:own)`);
    process.exit(1);
  }
  const ledger = new Ledger();
  const sentSingles: { body: string; key: string; reading: LedgerReading }[] = [];
  /** What was sent for each reading (a batch item without its submissionId), for --resolve-indeterminate. */
  const bodies = o['resolve-indeterminate'] ? new Map<LedgerReading, string>() : undefined;
  const total = expectedRequests(profile);
  let inFlight = 0;
  let clientOverloaded = 0;
  let resendMismatch = 0;
  const pending = new Set<Promise<void>>();

  const track = (p: Promise<void>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  const single = (intended: number) => {
    const resend = sentSingles.length > 0 && model.chance(resendShare);
    let body: string;
    let key: string;
    let reading: LedgerReading;
    if (resend) {
      const previous = sentSingles[Math.floor(Math.random() * sentSingles.length)]!;
      ({ body, key, reading } = previous);
    } else {
      const r = model.reading();
      const valid = !model.shouldBeInvalid();
      key = randomUUID();
      body = JSON.stringify(valid ? r : model.invalid(r));
      reading = { meterId: r.meterId, readAt: r.readAt, values: r.values, valid, key, outcome: 'indeterminate' };
      ledger.recordReading(reading);
      sentSingles.push({ body, key, reading });
    }
    return client.send('POST', '/v1/readings', body, { 'idempotency-key': key }).then((res) => {
      ledger.recordRequest({ status: res.status, latencyMs: performance.now() - intended, readings: 1, retryAfter: res.headers['retry-after'] !== undefined });
      const outcome = outcomeOf(res.status);
      if (outcome === 'acknowledged') {
        const id = (JSON.parse(res.body) as { id: string }).id;
        if (reading.id && reading.id !== id) resendMismatch++;
        reading.id = id;
        reading.outcome = 'acknowledged';
        bodies?.delete(reading);
      } else if (!resend && reading.outcome !== 'acknowledged') {
        // (A resend may have been answered first: its 2xx stands.)
        reading.outcome = outcome;
        // Kept only for what may need resending: at volume, every body would fill the heap.
        if (outcome === 'indeterminate') bodies?.set(reading, body);
      }
      // A resend's answer other than a 2xx changes nothing: the first send may have been stored
      // (a 503 or no answer), so a 429 or 5xx to the resend must not turn it into "rejected".
    });
  };

  const batch = (intended: number) => {
    const items: { r: MeterReading; valid: boolean; key: string; payload: unknown }[] = [];
    for (let i = 0; i < batchSize; i++) {
      const r = model.reading();
      const valid = !model.shouldBeInvalid();
      const key = randomUUID();
      items.push({ r, valid, key, payload: { ...(valid ? r : model.invalid(r)), submissionId: key } });
    }
    const readings = items.map((it) => {
      const reading: LedgerReading = { meterId: it.r.meterId, readAt: it.r.readAt, values: it.r.values, valid: it.valid, key: it.key, outcome: 'indeterminate' };
      ledger.recordReading(reading);
      return reading;
    });
    return client.send('POST', '/v1/readings/batch', JSON.stringify({ readings: items.map((it) => it.payload) })).then((res) => {
      ledger.recordRequest({ status: res.status, latencyMs: performance.now() - intended, readings: batchSize, retryAfter: res.headers['retry-after'] !== undefined });
      if (res.status === 202) {
        const answer = JSON.parse(res.body) as { accepted: { index: number; id: string }[]; rejected: { index: number }[] };
        for (const a of answer.accepted) Object.assign(readings[a.index]!, { id: a.id, outcome: 'acknowledged' });
        for (const r of answer.rejected) readings[r.index]!.outcome = 'rejected';
      } else {
        const outcome = outcomeOf(res.status);
        readings.forEach((r, i) => {
          r.outcome = outcome;
          if (outcome === 'indeterminate' && r.valid) bodies?.set(r, JSON.stringify(items[i]!.r));
        });
      }
    });
  };

  progress(`run ${runId}: ${profile.mode} at ${profile.rate} req/s for ${profile.durationMs / 1000} s (${total} requests), batches ${batchShare * 100}% x ${batchSize}, seed ${seed}`);
  const start = performance.now();
  let lastReport = start;
  let lastRequests = 0;
  for (const due of arrivals(profile)) {
    const intended = start + due;
    const wait = intended - performance.now();
    if (wait > 1) await sleep(wait);
    if (inFlight >= maxInFlight) {
      // The generator itself cannot keep the schedule: count it, never silently slow down.
      clientOverloaded++;
      ledger.recordRequest({ status: 0, latencyMs: performance.now() - intended, readings: 0 });
      continue;
    }
    inFlight++;
    const p = (model.chance(batchShare) ? batch(intended) : single(intended)).finally(() => inFlight--);
    track(p);
    const now = performance.now();
    if (now - lastReport >= 1_000) {
      const depth = await queueDepth(o['metrics-url']).catch(() => undefined);
      const errors = [...ledger.byStatus.entries()].filter(([s]) => s === 0 || s >= 500 || s === 429).reduce((a, [, n]) => a + n, 0);
      progress(
        `${((now - start) / 1000).toFixed(0).padStart(4)} s  ${(((ledger.requests - lastRequests) * 1000) / (now - lastReport)).toFixed(0).padStart(6)} resp/s  ` +
          `in flight ${inFlight}  errors ${errors}  p99 ${ledger.percentileMs(99).toFixed(1)} ms  queue ${depth ?? '?'} jobs`,
      );
      lastReport = now;
      lastRequests = ledger.requests;
    }
  }
  await Promise.all([...pending]);
  const elapsedMs = performance.now() - start;
  const resolution = bodies ? await resolveIndeterminate(client, ledger, bodies, num('resolve-timeout', 1, 86_400) * 1000) : undefined;
  client.close();
  // Marks the benchmark harness reads to split CPU between the load and the drain.
  progress(`load finished after ${Math.round(elapsedMs)} ms`);

  const summary = {
    runId,
    seed,
    profile,
    elapsedMs: Math.round(elapsedMs),
    achievedRequestsPerSec: Math.round((ledger.requests * 1000) / elapsedMs),
    clientOverloaded,
    resendMismatch,
    ...(resolution ? { resolution } : {}),
    ...ledger.summary(),
  };
  if (o.ledger) {
    const out = createWriteStream(o.ledger);
    out.write(`${JSON.stringify({ runId })}\n`);
    for (const r of ledger.readings) out.write(`${JSON.stringify(r)}\n`);
    await new Promise((resolve) => out.end(resolve));
  }
  const rows: [string, string][] = [
    ['requests', `${summary.requests} (${summary.achievedRequestsPerSec}/s achieved of ${profile.rate}/s intended)`],
    ['by status', Object.entries(summary.byStatus).map(([s, n]) => `${s === '0' ? 'no answer' : s}: ${n}`).join(', ')],
    ['readings', `acknowledged ${summary.readings.acknowledged}, rejected ${summary.readings.rejected}, indeterminate ${summary.readings.indeterminate}`],
    ['invalid sent / acknowledged', `${summary.readings.invalidSent} / ${summary.readings.invalidAcknowledged}`],
    ['latency from intended send (ms)', `p50 ${summary.latencyMs.p50.toFixed(1)}  p90 ${summary.latencyMs.p90.toFixed(1)}  p99 ${summary.latencyMs.p99.toFixed(1)}  p99.9 ${summary.latencyMs.p999.toFixed(1)}  max ${summary.latencyMs.max.toFixed(1)}`],
  ];
  for (const [k, v] of rows) progress(`${k.padEnd(32)} ${v}`);

  let verify: (VerifyReport & { drainMs: number; drained: boolean }) | undefined;
  if (o.verify) {
    if (!o['database-url']) {
      console.error('--verify needs --database-url (or DATABASE_URL)');
      process.exit(2);
    }
    const drain = await waitForDrain(o['database-url'], runId, summary.readings.acknowledged, num('drain-timeout', 1, 86_400) * 1000);
    progress(drain.drained ? `drained after ${drain.ms} ms` : `not drained after ${drain.ms} ms`);
    if (!drain.drained) progress(`the queue did not drain within ${o['drain-timeout']} s; verifying what is there`);
    verify = { ...verifyAgainstRows(ledger.readings, await fetchRows(o['database-url'], runId)), drainMs: drain.ms, drained: drain.drained };
    printReport(verify);
  }
  if (o.json) console.log(JSON.stringify({ ...summary, verify }, null, 2));
  const unresolved = resolution !== undefined && (resolution.stillIndeterminate > 0 || resolution.refusedOnResend > 0);
  const failed = (verify && !verify.ok) || summary.readings.invalidAcknowledged > 0 || resendMismatch > 0 || unresolved;
  process.exit(failed ? 1 : 0);
}

if (o.help) {
  console.log(USAGE);
} else if (positionals[0] === 'verify') {
  await verifyCommand();
} else if (positionals.length === 0 || positionals[0] === 'run') {
  await runCommand();
} else {
  console.error(USAGE);
  process.exit(2);
}
