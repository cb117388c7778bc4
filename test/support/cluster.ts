import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { control } from '../../scripts/cluster/control-client.mjs';
import { freePort, waitFor } from '../../scripts/lib/stack.mjs';
import { authHeaders, registerClient, testKey } from './auth.js';
import { Ledger, outcomeOf } from './ledger.js';

export { control };

/** A pid with its start time (clock ticks since boot), as the supervisor records them. */
interface Identity {
  pid: number;
  startTime: number;
}

export interface ProcessTable {
  url: string;
  state: 'starting' | 'ready' | 'stopping';
  supervisor: Identity & { socket: string };
  guardian: Identity & { log: string };
  stopDeadlineMs: number;
  nginx: Identity & { url: string; config: string; log: string };
  api: (Identity & { name: string; url: string; log: string; restarts: number; health?: string })[];
  writers: (Identity & { name: string; health: string; log: string; restarts: number })[];
  postgres: { primary: string; replica: string };
  redis: Identity & { url: string };
  /** With NGINX_TLS=on: the certificate nginx serves, and the plain-HTTP redirect if any. */
  tls?: { cert: string; selfSigned: boolean; redirectFrom?: string };
}

export interface ClusterPorts {
  nginx: number;
  pg: number;
  replica: number;
  redis: number;
}

export interface Cluster {
  dir: string;
  child: ChildProcess;
  url: string;
  pgPort: number;
  ports: ClusterPorts;
  /** The supervisor's own output (stdout and stderr) of this start. */
  logFile: string;
  exited: Promise<number | string | null>;
  table(): ProcessTable;
  status(): Promise<ProcessTable>;
  scale(target: { api?: number; writers?: number }): Promise<ProcessTable>;
  /** An outage drill: the part stays down (the watchdog leaves it) until started again. */
  drill(part: 'postgres' | 'redis', action: 'stop' | 'start'): Promise<unknown>;
  /** SIGTERM to the supervisor, then the data folder is removed (unless `keepData`, or KEEP_TEST_DATA is set). */
  stop(opts?: { keepData?: boolean }): Promise<number | string | null>;
}

/**
 * Runs the real `npm start` supervisor (scripts/start.mjs) in a temp data folder on free ports,
 * or, given `dir` and `ports`, again on the data folder and ports of an earlier start.
 */
export async function startCluster(opts: { api: number; writers: number; env?: Record<string, string>; dir?: string; ports?: ClusterPorts }): Promise<Cluster> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mi-cluster-'));
  const ports = opts.ports ?? { nginx: await freePort(), pg: await freePort(), replica: await freePort(), redis: await freePort() };
  const port = ports.nginx;
  const pgPort = ports.pg;
  const env = {
    ...process.env,
    PG_PORT: String(pgPort),
    PG_REPLICA_PORT: String(ports.replica),
    REDIS_PORT: String(ports.redis),
    LOG_REQUESTS: 'false',
    RATE_LIMIT: '10000000',
    // HTTPS (the default) with the run's certificate, which the test processes trust (scripts/test.mjs).
    ...(process.env.MI_TEST_TLS_CERT ? { NGINX_TLS_CERT: process.env.MI_TEST_TLS_CERT, NGINX_TLS_KEY: process.env.MI_TEST_TLS_KEY } : {}),
    ...opts.env,
  };
  // A start on the folder of an earlier one gets a log of its own; the earlier one's stays as it was.
  const logFile = join(dir, opts.dir ? `supervisor-${Date.now()}.log` : 'supervisor.log');
  const out = createWriteStream(logFile);
  const child = spawn(process.execPath, ['scripts/start.mjs', '--data-dir', dir, '--port', String(port), '--api', String(opts.api), '--writers', String(opts.writers)], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const tableFile = join(dir, 'cluster.json');
  await waitFor('the cluster to be ready', () => {
    if (child.exitCode !== null) throw Object.assign(new Error(`supervisor exited with ${child.exitCode}; see ${logFile}`), { fatal: true });
    return existsSync(tableFile) && readFileSync(logFile, 'utf8').includes('ready on');
  }, 120_000, 200);
  const socket = join(dir, 'supervisor.sock');
  // The suite's key, as a client of this cluster too (a start on an earlier folder has it already).
  const primary = (JSON.parse(readFileSync(tableFile, 'utf8')) as ProcessTable).postgres.primary;
  if (!opts.dir) registerClient(testKey(), { databaseUrl: primary, name: 'tests', scopes: 'submit,read:all,admin' });
  return {
    dir,
    child,
    // The table's URL: https:// when the cluster runs with NGINX_TLS=on.
    url: (JSON.parse(readFileSync(tableFile, 'utf8')) as ProcessTable).url,
    pgPort,
    ports,
    logFile,
    exited,
    table: () => JSON.parse(readFileSync(tableFile, 'utf8')) as ProcessTable,
    status: () => control<ProcessTable>(socket, 'GET', '/status'),
    scale: (target) => control<ProcessTable>(socket, 'POST', '/scale', target),
    drill: (part, action) => control(socket, 'POST', `/${action}/${part}`),
    async stop(stopOpts) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      if (!process.env.KEEP_TEST_DATA && !stopOpts?.keepData) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface LoadResult {
  status: number;
  servedBy: string | null;
  id?: string;
  body: unknown;
  sentAt: number;
  doneAt: number;
  error?: string;
}

/**
 * Open-model steady load: one request every 1000/rate ms whatever the server does, so a stall
 * shows as failures or latency instead of silently slowing the sender.
 */
/**
 * `durationMs` of load at `ratePerSecond`; with `until`, the load goes on past that until the
 * promise settles, so a step that takes longer on a busy machine still happens under load.
 */
export async function steadyLoad(url: string, ratePerSecond: number, durationMs: number, makeBody: (i: number) => unknown, until?: Promise<unknown>): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  const pending: Promise<void>[] = [];
  let settled = until === undefined;
  void until?.finally(() => (settled = true));
  const start = performance.now();
  for (let i = 0; ; i++) {
    const due = start + (i * 1000) / ratePerSecond;
    if (due - start > durationMs && settled) break;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = makeBody(i);
    const sentAt = Date.now();
    pending.push(
      fetch(`${url}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders() }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
        .then(async (res) => {
          const json = (await res.json().catch(() => undefined)) as { id?: string } | undefined;
          results.push({ status: res.status, servedBy: res.headers.get('x-served-by'), id: json?.id, body, sentAt, doneAt: Date.now() });
        })
        .catch((err: unknown) => {
          const cause = (err as { cause?: { code?: string; message?: string } }).cause;
          results.push({ status: 0, servedBy: null, body, sentAt, doneAt: Date.now(), error: `${String(err)} (${cause?.code ?? cause?.message ?? 'no cause'})` });
        }),
    );
  }
  await Promise.all(pending);
  return results;
}

/** The ledger of a steady load: no answer at all is indeterminate, like a 5xx. */
export function ledgerOfLoad(results: LoadResult[]): Ledger {
  const ledger = new Ledger();
  for (const r of results) ledger.record({ body: r.body, valid: true, outcome: r.status === 0 ? 'indeterminate' : outcomeOf(r.status), status: r.status, id: r.id });
  return ledger;
}
