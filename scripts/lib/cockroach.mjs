// A local three-node CockroachDB cluster for `npm start -- --db cockroach` and the CockroachDB
// test suite: `cockroach start --insecure --join …` three times on free loopback ports, data
// under the data folder, then `cockroach init` once. Needs a `cockroach` binary (COCKROACH_BIN,
// or on PATH); there is no fallback to PostgreSQL. Insecure mode: loopback only, for development.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './stack.mjs';
import { STOP_DEADLINES_MS } from './stop-deadlines.mjs';

const run = promisify(execFile);

/**
 * node-postgres, loaded on first use: `npm start` imports this module before it has installed
 * the npm dependencies, so nothing here may import an npm package at load time.
 */
async function pgClient(options) {
  const { default: pg } = await import('pg');
  return new pg.Client(options);
}

export const COCKROACH_RELEASES_URL = 'https://www.cockroachlabs.com/docs/releases/';

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The cockroach binary: COCKROACH_BIN when set (it must exist and be executable), else the first
 * `cockroach` on PATH. Returns { bin } or { problem } with a message that says where to get one.
 */
export function findCockroachBin(env = process.env) {
  const where = `Download a CockroachDB binary from ${COCKROACH_RELEASES_URL} and put \`cockroach\` on PATH or set COCKROACH_BIN=/path/to/cockroach.`;
  if (env.COCKROACH_BIN) {
    if (!existsSync(env.COCKROACH_BIN)) return { problem: `COCKROACH_BIN=${env.COCKROACH_BIN} does not exist. ${where}` };
    if (!executable(env.COCKROACH_BIN)) return { problem: `COCKROACH_BIN=${env.COCKROACH_BIN} is not executable. ${where}` };
    return { bin: env.COCKROACH_BIN };
  }
  for (const dir of (env.PATH ?? '').split(':')) {
    const candidate = dir && join(dir, 'cockroach');
    if (candidate && existsSync(candidate) && executable(candidate)) return { bin: candidate };
  }
  return { problem: `no cockroach binary: COCKROACH_BIN is not set and there is no \`cockroach\` on PATH. ${where}` };
}

/** `cockroach version --build-tag`, e.g. "v25.2.1"; throws when the binary does not run. */
export async function cockroachVersion(bin) {
  const { stdout } = await run(bin, ['version', '--build-tag'], { timeout: 30_000 });
  return stdout.trim();
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The arguments of one `cockroach start`, a pure function so it can be checked without a binary. */
export function nodeArgs({ storeDir, logDir, ports, joinPorts, cache = '128MiB', maxSqlMemory = '128MiB' }) {
  return [
    'start',
    '--insecure',
    `--store=path=${storeDir}`,
    `--listen-addr=127.0.0.1:${ports.rpc}`,
    `--sql-addr=127.0.0.1:${ports.sql}`,
    `--http-addr=127.0.0.1:${ports.http}`,
    `--join=${joinPorts.map((p) => `127.0.0.1:${p}`).join(',')}`,
    `--cache=${cache}`,
    `--max-sql-memory=${maxSqlMemory}`,
    `--log-dir=${logDir}`,
    `--pid-file=${join(storeDir, 'cockroach.pid')}`,
  ];
}

/** A connection URL for one node's SQL port; `database` may not exist yet (CockroachDB accepts that). */
export function sqlUrl(port, database = 'meter_intake') {
  return `postgresql://root@127.0.0.1:${port}/${database}?sslmode=disable`;
}

class CockroachNode {
  constructor({ index, bin, dir, logsDir, ports, joinPorts, cache, maxSqlMemory, onSpawn }) {
    Object.assign(this, { index, bin, ports, joinPorts, cache, maxSqlMemory, onSpawn });
    this.name = `cockroach-${index + 1}`;
    this.storeDir = join(dir, `node${index + 1}`);
    this.logDir = join(logsDir, this.name);
    this.logFile = join(logsDir, `${this.name}.out.log`);
  }
  get url() {
    return sqlUrl(this.ports.sql);
  }
  get httpUrl() {
    return `http://127.0.0.1:${this.ports.http}`;
  }
  get running() {
    return Boolean(this.child) && this.child.exitCode === null && this.child.signalCode === null;
  }
  start() {
    mkdirSync(this.storeDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    const out = openSync(this.logFile, 'a');
    const args = nodeArgs({ storeDir: this.storeDir, logDir: this.logDir, ports: this.ports, joinPorts: this.joinPorts, cache: this.cache, maxSqlMemory: this.maxSqlMemory });
    // Own process group: a Ctrl-C reaches the supervisor only, which stops the nodes in order.
    this.child = spawn(this.bin, args, { stdio: ['ignore', out, out], detached: true });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? signal)));
    // The node writes its pid file only once it is ready; the caller records the pid before that.
    this.onSpawn?.(this);
  }
  async select1() {
    const client = await pgClient({ connectionString: sqlUrl(this.ports.sql, 'defaultdb'), connectionTimeoutMillis: 2_000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  /** SIGTERM makes a node drain and shut down cleanly; SIGKILL after the deadline. */
  async stop(timeoutMs = STOP_DEADLINES_MS.cockroach) {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
  kill9() {
    this.child?.kill('SIGKILL');
    return this.exited;
  }
}

/**
 * Starts (or, when `dir` already holds one, restarts) a local cluster of `nodes` nodes.
 * Ports are chosen free on the first start and kept in <dir>/ports.json, so a restart finds the
 * same nodes at the same addresses. Returns the cluster with per-node SQL URLs and stop().
 */
export async function startCockroachCluster({ bin, dir, logsDir, nodes = 3, database = 'meter_intake', log = () => {}, cache, maxSqlMemory, onSpawn }) {
  mkdirSync(dir, { recursive: true });
  mkdirSync(logsDir, { recursive: true });
  const portsFile = join(dir, 'ports.json');
  let ports;
  if (existsSync(portsFile)) {
    ports = JSON.parse(readFileSync(portsFile, 'utf8'));
    for (const p of ports.flatMap((n) => [n.rpc, n.sql, n.http])) {
      if (!(await portFree(p))) throw new Error(`port ${p} of the CockroachDB cluster in ${dir} is in use. Is it already running? Stop it, or start with --fresh (new data, new ports).`);
    }
  } else {
    ports = [];
    for (let i = 0; i < nodes; i++) ports.push({ rpc: await freePort(), sql: await freePort(), http: await freePort() });
    writeFileSync(portsFile, `${JSON.stringify(ports, null, 2)}\n`);
  }
  const joinPorts = ports.map((p) => p.rpc);
  const members = ports.map((p, index) => new CockroachNode({ index, bin, dir, logsDir, ports: p, joinPorts, cache, maxSqlMemory, onSpawn }));
  log(`starting CockroachDB: ${members.length} nodes (${bin}, SQL ports ${ports.map((p) => p.sql).join(', ')})`);
  for (const m of members) m.start();

  const stopAll = async () => {
    await Promise.all(members.map((m) => m.stop()));
  };
  try {
    const initialized = join(dir, 'initialized');
    if (!existsSync(initialized)) {
      // The nodes wait for `cockroach init` before serving anything; it may take a moment for
      // the first node to listen. "already initialized" (a restart after a crash) is fine.
      await waitFor(
        'cockroach init',
        async () => {
          for (const m of members) if (!m.running) throw Object.assign(new Error(`${m.name} exited; see ${m.logFile}`), { fatal: true });
          try {
            await run(bin, ['init', '--insecure', `--host=127.0.0.1:${ports[0].rpc}`], { timeout: 20_000 });
          } catch (err) {
            if (!/already been initialized/.test(String(err.stderr ?? err.message))) throw err;
          }
          return true;
        },
        60_000,
        1_000,
      );
      writeFileSync(initialized, `${new Date().toISOString()}\n`);
    }
    await waitFor(
      'every CockroachDB node to accept SQL',
      async () => {
        for (const m of members) if (!m.running) throw Object.assign(new Error(`${m.name} exited; see ${m.logFile}`), { fatal: true });
        await Promise.all(members.map((m) => m.select1()));
        return true;
      },
      90_000,
      500,
    );
    const admin = await pgClient({ connectionString: sqlUrl(ports[0].sql, 'defaultdb') });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE IF NOT EXISTS ${database}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  return {
    nodes: members,
    urls: members.map((m) => sqlUrl(m.ports.sql, database)),
    url: sqlUrl(members[0].ports.sql, database),
    stop: stopAll,
  };
}
