// Starts the local data services meter-intake needs: a PostgreSQL primary, a streaming
// hot-standby replica and Redis (AOF on, noeviction). Used by `npm start` and by the test
// harness, so both run exactly the same setup. PostgreSQL runs as the `postgres` user when
// this process is root (PostgreSQL refuses to run as root).
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { STOP_DEADLINES_MS } from './stop-deadlines.mjs';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

/** PostgreSQL server binaries: Debian keeps them under /usr/lib/postgresql/<version>/bin; some images also link them into PATH. */
export function findPgBin(name) {
  if (process.env.PG_BIN_DIR && existsSync(join(process.env.PG_BIN_DIR, name))) return join(process.env.PG_BIN_DIR, name);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const candidate = join(root, v, 'bin', name);
      if (existsSync(candidate)) return candidate;
    }
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`PostgreSQL binary ${name} not found (looked in /usr/lib/postgresql/*/bin and PATH). Install postgresql (apt-get install postgresql) or set PG_BIN_DIR.`);
}

export function findBin(name, hint) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/usr/local/bin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} not found. ${hint}`);
}

/** Runs a PostgreSQL tool as the postgres user when we are root. */
async function pgRun(bin, args, opts = {}) {
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  // Own process group: a Ctrl-C in the terminal reaches the supervisor only, which then stops
  // everything in order instead of PostgreSQL shutting down under a writer that is still flushing.
  return run(cmd, argv, { maxBuffer: 16 * 1024 * 1024, detached: true, ...opts });
}

function ownForPostgres(path, mode) {
  mkdirSync(path, { recursive: true });
  if (mode) chmodSync(path, mode);
  if (isRoot) {
    const { uid, gid } = postgresIds();
    chownSync(path, uid, gid);
  }
}

let ids;
function postgresIds() {
  if (!ids) {
    const line = readFileLine('/etc/passwd', 'postgres:');
    if (!line) throw new Error('running as root but there is no postgres user; create one (adduser --system postgres) or run as a normal user');
    const parts = line.split(':');
    ids = { uid: Number(parts[2]), gid: Number(parts[3]) };
  }
  return ids;
}

function readFileLine(file, prefix) {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(prefix)) : undefined;
}

/**
 * A port nothing listens on now, chosen by the kernel. The port is released before it is used, so
 * two calls can return the same one: a caller that hands out several ports before they are bound
 * remembers what it gave out (it once gave an API replica the writer's health port: the replica
 * could not bind, and nginx sent half the requests to the writer's health server). One set per
 * process; `markPortsTaken` adds ports chosen some other way (the supervisor's fixed ports).
 */
const portsHandedOut = new Set();
export function markPortsTaken(ports) {
  for (const port of ports) portsHandedOut.add(port);
}
export async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (!portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found that was not already handed out');
}

/** Polls fn until it returns something truthy; an error with `fatal: true` ends the wait at once. */
export async function waitFor(what, fn, timeoutMs = 30_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      // A condition that can no longer come true (the process exited) fails at once.
      if (err?.fatal) throw err;
      lastErr = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
}

/** A PostgreSQL instance controlled through pg_ctl; `stop`/`start` let tests take it down and bring it back. */
export class PgInstance {
  constructor(name, dataDir, port, socketDir, logFile) {
    Object.assign(this, { name, dataDir, port, socketDir, logFile });
  }
  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/meter_intake`;
  }
  /** `upstreamPort` makes this a standby of the primary on that port (set on every start, so ports may change). */
  async start(upstreamPort) {
    this.upstreamPort = upstreamPort ?? this.upstreamPort;
    const up = this.upstreamPort;
    const standby = up ? ` -c primary_conninfo='host=127.0.0.1 port=${up} user=postgres application_name=${this.name}' -c primary_slot_name=replica1` : '';
    await pgRun(findPgBin('pg_ctl'), ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', '-o', `-p ${this.port} -k ${this.socketDir}${standby}`, 'start']);
  }
  /** pg_ctl stop; a fast shutdown that does not finish within its deadline becomes an immediate one. */
  async stop(mode = 'fast') {
    const stop = (m, ms) =>
      pgRun(findPgBin('pg_ctl'), ['-D', this.dataDir, '-m', m, '-w', '-t', String(ms / 1000), 'stop']).catch((err) => {
        if (!String(err.stderr ?? err).includes('Is server running')) throw err;
      });
    if (mode !== 'fast') return stop(mode, STOP_DEADLINES_MS.postgresImmediate);
    await stop('fast', STOP_DEADLINES_MS.postgresFast).catch(() => stop('immediate', STOP_DEADLINES_MS.postgresImmediate));
  }
  /** True while the postmaster of this data folder runs (pg_ctl status). */
  async isRunning() {
    return pgRun(findPgBin('pg_ctl'), ['-D', this.dataDir, 'status']).then(() => true, () => false);
  }
  async psql(sql, db = 'meter_intake') {
    const { stdout } = await pgRun(findPgBin('psql'), ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', db, '-XAtqc', sql]);
    return stdout.trim();
  }
}

/**
 * Starts (or, when the data folder already holds them, restarts) the primary, the replica
 * and Redis under `dir`. Returns URLs and a stop() that shuts everything down cleanly.
 */
export async function startStack({ dir, pgPort, replicaPort, redisPort, withReplica = true, appendfsync = DEFAULT_APPENDFSYNC, log = () => {} }) {
  mkdirSync(dir, { recursive: true });
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const sockets = join(dir, 'sockets');
  ownForPostgres(dir);
  ownForPostgres(sockets);
  ownForPostgres(logs);

  const primary = new PgInstance('primary', join(dir, 'pg-primary'), pgPort, sockets, join(logs, 'pg-primary.log'));
  if (!existsSync(join(primary.dataDir, 'PG_VERSION'))) {
    log(`initdb ${primary.dataDir}`);
    ownForPostgres(primary.dataDir, 0o700);
    await pgRun(findPgBin('initdb'), ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C']);
    appendFileSync(
      join(primary.dataDir, 'postgresql.conf'),
      [
        "listen_addresses = '127.0.0.1'",
        'max_connections = 300',
        'wal_level = replica',
        'max_wal_senders = 10',
        'max_replication_slots = 10',
        'hot_standby = on',
        'synchronous_commit = on',
        "log_line_prefix = '%m [%p] %q%a '",
        // Log times in UTC whatever the machine's zone, so they compare with the services' ISO times.
        "log_timezone = 'UTC'",
        '',
      ].join('\n'),
    );
    appendFileSync(join(primary.dataDir, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n');
    await primary.start();
    await primary.psql('CREATE DATABASE meter_intake', 'postgres');
    if (withReplica) await primary.psql("SELECT pg_create_physical_replication_slot('replica1')", 'postgres');
  } else {
    await primary.start();
  }

  let replica;
  if (withReplica) {
    replica = new PgInstance('replica', join(dir, 'pg-replica'), replicaPort, sockets, join(logs, 'pg-replica.log'));
    if (!existsSync(join(replica.dataDir, 'PG_VERSION'))) {
      log(`pg_basebackup into ${replica.dataDir}`);
      ownForPostgres(replica.dataDir, 0o700);
      await pgRun(findPgBin('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-D', replica.dataDir, '-R', '-X', 'stream', '-S', 'replica1', '-c', 'fast']);
      appendFileSync(join(replica.dataDir, 'postgresql.auto.conf'), 'hot_standby_feedback = on\n');
    }
    await replica.start(pgPort);
    await waitFor('replica to accept reads', async () => (await replica.psql('SELECT pg_is_in_recovery()')) === 't', 60_000, 200);
  }

  const redisDir = join(dir, 'redis');
  mkdirSync(redisDir, { recursive: true });
  const redis = new RedisInstance(redisDir, redisPort, join(logs, 'redis.log'), appendfsync);
  await redis.start();

  return {
    primary,
    replica,
    redis,
    databaseUrl: primary.url,
    replicaUrl: replica?.url,
    redisUrl: redis.url,
    async stop() {
      await redis.stop();
      if (replica) await replica.stop();
      await primary.stop();
    },
  };
}

/** `always`: with `everysec` Redis can acknowledge a write it loses in a crash (docs/ARCHITECTURE.md#limits-of-the-promise). */
export const DEFAULT_APPENDFSYNC = 'always';
/** The policy a cluster runs with: REDIS_APPENDFSYNC, or the default. */
export function appendfsyncFromEnv() {
  return process.env.REDIS_APPENDFSYNC ?? DEFAULT_APPENDFSYNC;
}

/**
 * Redis's memory ceiling: with noeviction, a full Redis refuses writes and the API answers 503
 * instead of the kernel killing Redis. The sizing formula is in docs/OPERATIONS.md.
 */
export const DEFAULT_MAXMEMORY = '2gb';
export function maxmemoryFromEnv() {
  return process.env.REDIS_MAXMEMORY || DEFAULT_MAXMEMORY;
}

/** Redis with AOF (appendfsync configurable), a memory ceiling and noeviction: an acknowledged job must never vanish. */
export class RedisInstance {
  constructor(dir, port, logFile, appendfsync = DEFAULT_APPENDFSYNC, maxmemory = maxmemoryFromEnv()) {
    Object.assign(this, { dir, port, logFile, appendfsync, maxmemory });
  }
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    const bin = findBin('redis-server', 'Install it with: apt-get install -y redis-server');
    const out = openSync(this.logFile, 'a');
    this.child = spawn(
      bin,
      [
        '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--daemonize', 'no',
        '--appendonly', 'yes', '--appendfsync', this.appendfsync, '--save', '', '--maxmemory-policy', 'noeviction',
        '--maxmemory', this.maxmemory, '--protected-mode', 'yes', '--dbfilename', 'dump.rdb', '--loglevel', 'warning',
        // Found by the guardian and the next `npm start` if the supervisor dies (scripts/cluster/stop-cluster.mjs).
        '--pidfile', join(this.dir, 'redis.pid'),
      ],
      // TZ: Redis writes its log in local time; UTC makes it comparable with the other logs.
      { stdio: ['ignore', out, out], detached: true, env: { ...process.env, TZ: 'UTC' } },
    );
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    await waitFor(`redis on ${this.port}`, async () => (await this.cli('PING')) === 'PONG', 30_000);
  }
  get running() {
    return Boolean(this.child) && this.child.exitCode === null && this.child.signalCode === null;
  }
  async cli(...args) {
    const { stdout } = await run(findBin('redis-cli', 'apt-get install -y redis-tools'), ['-p', String(this.port), ...args]);
    return stdout.trim();
  }
  /** A clean stop: Redis fsyncs the AOF on SIGTERM before exiting. SIGKILL after the stop deadline. */
  async stop(timeoutMs = STOP_DEADLINES_MS.redis) {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
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

export function writeJson(file, value) {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
