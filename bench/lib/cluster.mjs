// The benchmark drives the real cluster: `scripts/start.mjs` (the supervisor behind `npm start`)
// as a child process on free ports in a temp folder, restarted with another INTAKE_MODE when a
// step needs one. Its process table (cluster.json) names every pid the CPU accounting needs.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { control } from '../../scripts/cluster/control-client.mjs';
import { httpsStatus } from '../../scripts/cluster/tls.mjs';
import { root } from '../../scripts/lib/setup.mjs';
import { freePort, waitFor } from '../../scripts/lib/stack.mjs';

/** A new client in the PostgreSQL database at `databaseUrl`, issued with the key manager operators use; returns its key. */
export function issueClientKey({ databaseUrl, name, scopes }) {
  const r = spawnSync(process.execPath, ['dist/apps/clients/src/main.js', 'create', '--name', name, '--scopes', scopes, '--json'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, DATABASE_URL: databaseUrl, DB_BACKEND: 'postgres', LOG_LEVEL: 'warn' },
  });
  if (r.status !== 0) throw new Error(`could not issue a client key (${name}): ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).key;
}

export class BenchCluster {
  constructor({ dataDir, ports, apis, writers, logFile }) {
    Object.assign(this, { dataDir, ports, apis, writers, logFile });
    this.accessLog = join(dataDir, 'nginx', 'access.log');
  }

  /**
   * A cluster to be started in a new temp folder (`work`, world-readable so PostgreSQL's user can
   * enter it) on free ports: its data in work/cluster, the supervisor's log in work/supervisor.log.
   */
  static async inTempFolder(prefix, { apis, writers }) {
    const work = mkdtempSync(join(tmpdir(), prefix));
    chmodSync(work, 0o755);
    const cluster = new BenchCluster({
      dataDir: join(work, 'cluster'),
      ports: { nginx: await freePort(), pg: await freePort(), replica: await freePort(), redis: await freePort() },
      apis,
      writers,
      logFile: join(work, 'supervisor.log'),
    });
    cluster.work = work;
    return cluster;
  }

  /** nginx's URL as the running cluster's table says it: https:// with NGINX_TLS=on. */
  get url() {
    return this.table()?.url ?? `http://127.0.0.1:${this.ports.nginx}`;
  }

  /** The certificate to trust when the cluster runs with TLS and made its own, else undefined. */
  get caFile() {
    const tls = this.table()?.tls;
    return tls?.selfSigned ? tls.cert : undefined;
  }

  async start(mode, extraEnv = {}) {
    const out = openSync(this.logFile, 'a');
    this.mode = mode;
    this.child = spawn(
      process.execPath,
      ['scripts/start.mjs', '--port', String(this.ports.nginx), '--data-dir', this.dataDir, '--api', String(this.apis), '--writers', String(this.writers)],
      {
        cwd: root,
        stdio: ['ignore', out, out],
        env: {
          ...process.env,
          PG_PORT: String(this.ports.pg),
          PG_REPLICA_PORT: String(this.ports.replica),
          REDIS_PORT: String(this.ports.redis),
          INTAKE_MODE: mode,
          NGINX_ACCESS_LOG: 'true',
          // One generator on one address: the per-address limit would measure the limit, not the cluster.
          NGINX_RATE_PER_SECOND: '1000000',
          NGINX_RATE_BURST: '1000000',
          LOG_REQUESTS: 'false',
          LOG_LEVEL: 'warn',
          // Plain HTTP unless a step asks for TLS: the targets are stated for it (PERFORMANCE.md,
          // "What TLS at the edge costs" has the HTTPS profile).
          NGINX_TLS: 'off',
          ...extraEnv,
        },
      },
    );
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    await waitFor(
      `cluster (${mode})`,
      async () => {
        if (this.child.exitCode !== null) throw Object.assign(new Error(`the supervisor exited (${this.child.exitCode}); see ${this.logFile}`), { fatal: true });
        const table = this.table();
        if (table?.supervisor?.pid !== this.child.pid || table.state !== 'ready') return false;
        const url = `${table.url}/health/ready`;
        const status = url.startsWith('https:') ? await httpsStatus(url, table.tls.cert, 2_000).catch(() => 0) : (await fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.status;
        return status === 200;
      },
      180_000,
      250,
    );
    // Every /v1 call needs a client key: one client for the whole run, issued with the key
    // manager operators use, on the first start (later starts use the same data folder and database).
    this.apiKey ??= issueClientKey({ databaseUrl: this.primaryUrl, name: `bench-${Date.now()}`, scopes: 'submit,read:all' });
  }

  /** The run's credential as a header. */
  get authHeader() {
    return { authorization: `Bearer ${this.apiKey}` };
  }

  table() {
    const file = join(this.dataDir, 'cluster.json');
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Root pids of each component, for CPU accounting. */
  components() {
    const t = this.table();
    const postmaster = (dir) => {
      try {
        return [Number(readFileSync(join(this.dataDir, dir, 'postmaster.pid'), 'utf8').split('\n')[0])];
      } catch {
        return [];
      }
    };
    return {
      nginx: t?.nginx?.pid ? [t.nginx.pid] : [],
      api: (t?.api ?? []).map((a) => a.pid).filter(Boolean),
      writer: (t?.writers ?? []).map((w) => w.pid).filter(Boolean),
      redis: t?.redis?.pid ? [t.redis.pid] : [],
      'postgres primary': postmaster('pg-primary'),
      'postgres replica': postmaster('pg-replica'),
    };
  }

  get primaryUrl() {
    return this.table().postgres.primary;
  }

  get replicaUrl() {
    return this.table().postgres.replica;
  }

  /** A call on the supervisor's control socket (scale, stop/start postgres). */
  control(method, path, body) {
    return control(join(this.dataDir, 'supervisor.sock'), method, path, body).catch((err) => {
      throw new Error(`${method} ${path}: ${err.message}`);
    });
  }

  /**
   * The load generator against this cluster, with its key (and certificate), as JSON: resolves
   * with its exit code and parsed summary. Its output goes to `logFile`, or its progress to this
   * process's stderr. An 8 GB heap: a 30-minute ledger of millions of readings needs it. stop()
   * stops any still running, whatever ends the run.
   */
  runLoadgen(args, { logFile } = {}) {
    const extra = ['--url', this.url, '--json', '--quiet', ...(this.caFile ? ['--ca', this.caFile] : [])];
    const child = spawn(process.execPath, ['--max-old-space-size=8192', 'dist/apps/loadgen/src/main.js', ...extra, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MI_API_KEY: this.apiKey } });
    (this.loadgens ??= new Set()).add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (logFile ? (stderr += d) : process.stderr.write(d)));
    return new Promise((resolve) => {
      child.once('close', (code) => {
        this.loadgens.delete(child);
        if (logFile) writeFileSync(logFile, `${stderr}\n${stdout}`);
        let summary;
        try {
          summary = JSON.parse(stdout.slice(stdout.indexOf('{')));
        } catch {
          summary = undefined;
        }
        resolve({ code, summary });
      });
    });
  }

  async stop() {
    for (const child of this.loadgens ?? []) child.kill('SIGTERM');
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 90_000);
    await this.exited;
    clearTimeout(timer);
    await sleep(200);
  }
}
