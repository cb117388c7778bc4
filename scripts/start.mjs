// `npm start`: the local meter-intake stack on one machine. PostgreSQL primary + streaming
// replica and Redis (AOF, noeviction) under .data/, migrations, one API on
// http://127.0.0.1:8080 and one writer, supervised: a crashed process is restarted with
// backoff; Ctrl-C or SIGTERM stops the API, lets the writer drain, then stops Redis and
// PostgreSQL cleanly.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, gitIgnoredDataDir, rel, root } from './lib/setup.mjs';
import { startStack, waitFor, writeJson } from './lib/stack.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '8080' },
    db: { type: 'string', default: process.env.DB_BACKEND ?? 'postgres' },
    fresh: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm start -- [--port 8080] [--db postgres] [--fresh]
  --port   port of the API (default 8080)
  --db     database backend; only postgres is available in this build
  --fresh  wipe .data/ (databases, queue, logs) before starting`);
  process.exit(0);
}
if (args.db !== 'postgres') {
  console.error(`--db ${args.db}: not available in this build. Only postgres is supported for now (CockroachDB support is tracked separately).`);
  process.exit(2);
}

const log = (message) => process.stderr.write(`[meter-intake] ${message}\n`);
const dataDir = gitIgnoredDataDir();
const ports = {
  api: Number(args.port),
  pg: Number(process.env.PG_PORT ?? 55432),
  replica: Number(process.env.PG_REPLICA_PORT ?? 55433),
  redis: Number(process.env.REDIS_PORT ?? 56379),
  writerHealth: Number(process.env.WRITER_HEALTH_PORT ?? 3100),
};

function portFree(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

ensureDependencies();
ensureSystemPackages(['redis-server', 'postgres']);
ensureBuilt();

for (const [name, port] of Object.entries(ports)) {
  if (!(await portFree(port))) {
    console.error(`port ${port} (${name}) is in use. Is meter-intake already running? Stop it, or choose other ports (--port, PG_PORT, PG_REPLICA_PORT, REDIS_PORT, WRITER_HEALTH_PORT).`);
    process.exit(1);
  }
}
if (args.fresh) {
  log(`--fresh: removing ${rel(dataDir)}`);
  rmSync(dataDir, { recursive: true, force: true });
}
mkdirSync(join(dataDir, 'logs'), { recursive: true });

log('starting PostgreSQL primary, streaming replica and Redis');
const stack = await startStack({ dir: dataDir, pgPort: ports.pg, replicaPort: ports.replica, redisPort: ports.redis, appendfsync: process.env.REDIS_APPENDFSYNC ?? 'everysec', log });

const appEnv = {
  ...process.env,
  DATABASE_URL: stack.databaseUrl,
  DATABASE_REPLICA_URL: stack.replicaUrl,
  REDIS_URL: stack.redisUrl,
  DB_BACKEND: 'postgres',
};

log('applying migrations');
const migrate = spawnSync(process.execPath, ['dist/libs/database/src/migrate.main.js'], { cwd: root, env: appEnv, stdio: 'inherit' });
if (migrate.status !== 0) {
  await stack.stop();
  console.error('migrations failed; see the output above');
  process.exit(1);
}

/** A supervised child: restarted with exponential backoff when it dies unexpectedly. */
class Supervised {
  constructor(name, entry, env, healthUrl) {
    Object.assign(this, { name, entry, env, healthUrl, restarts: 0, stopping: false });
    this.logFile = join(dataDir, 'logs', `${name}.log`);
  }
  start() {
    const out = createWriteStream(this.logFile, { flags: 'a' });
    // detached: a terminal Ctrl-C reaches only the supervisor, which stops the parts in order.
    this.child = spawn(process.execPath, [this.entry], { cwd: root, env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout.pipe(out);
    this.child.stderr.pipe(out);
    this.startedAt = Date.now();
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        resolve();
        if (this.stopping) return;
        // A process that ran for a minute is healthy again: start the backoff from scratch.
        if (Date.now() - this.startedAt > 60_000) this.restarts = 0;
        const delay = Math.min(1_000 * 2 ** this.restarts, 30_000);
        this.restarts++;
        log(`${this.name} exited (${signal ?? `code ${code}`}); restarting in ${delay} ms (restart #${this.restarts}, log: ${rel(this.logFile)})`);
        setTimeout(() => !this.stopping && this.start(), delay);
      });
    });
  }
  async waitReady(timeoutMs = 60_000) {
    await waitFor(`${this.name} to be ready`, async () => (await fetch(this.healthUrl).catch(() => undefined))?.status === 200, timeoutMs, 200);
  }
  async stop(timeoutMs) {
    this.stopping = true;
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      log(`${this.name} did not stop within ${timeoutMs} ms; killing it`);
      this.child.kill('SIGKILL');
    }, timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const writer = new Supervised('writer', 'dist/apps/writer/src/main.js', { ...appEnv, WRITER_HEALTH_PORT: String(ports.writerHealth), MIGRATE_ON_START: 'false' }, `http://127.0.0.1:${ports.writerHealth}/health/ready`);
const api = new Supervised('api', 'dist/apps/api/src/main.js', { ...appEnv, PORT: String(ports.api), HOST: '127.0.0.1', REPLICA_NAME: 'api-1', MIGRATE_ON_START: 'false' }, `http://127.0.0.1:${ports.api}/health/ready`);

let shuttingDown = false;
async function shutdown(signal, exitCode = 0) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`${signal}: stopping the API, draining the writer, then Redis and PostgreSQL`);
  await api.stop(15_000);
  await writer.stop(35_000);
  await stack.stop();
  rmSync(join(dataDir, 'cluster.json'), { force: true });
  log(exitCode === 0 ? 'stopped cleanly' : 'stopped after a failed start');
  process.exit(exitCode);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

writer.start();
api.start();
try {
  await Promise.all([writer.waitReady(), api.waitReady()]);
} catch (err) {
  log(`${err.message}; see ${rel(api.logFile)} and ${rel(writer.logFile)}`);
  await shutdown('start-up failure', 1);
}

const table = [
  ['part', 'where', 'pid', 'log'],
  ['api', `http://127.0.0.1:${ports.api}`, api.child.pid, rel(api.logFile)],
  ['writer', `http://127.0.0.1:${ports.writerHealth}/health/ready`, writer.child.pid, rel(writer.logFile)],
  ['postgres primary', stack.databaseUrl, '-', rel(stack.primary.logFile)],
  ['postgres replica', stack.replicaUrl, '-', rel(stack.replica.logFile)],
  ['redis', stack.redisUrl, stack.redis.child.pid, rel(stack.redis.logFile)],
];
const widths = table[0].map((_, c) => Math.max(...table.map((r) => String(r[c]).length)));
console.log(table.map((r) => r.map((v, c) => String(v).padEnd(widths[c])).join('  ')).join('\n'));
writeJson(join(dataDir, 'cluster.json'), {
  startedAt: new Date().toISOString(),
  supervisorPid: process.pid,
  api: { url: `http://127.0.0.1:${ports.api}`, pid: api.child.pid, log: api.logFile },
  writer: { health: `http://127.0.0.1:${ports.writerHealth}`, pid: writer.child.pid, log: writer.logFile },
  postgres: { primary: stack.databaseUrl, replica: stack.replicaUrl },
  redis: { url: stack.redisUrl, pid: stack.redis.child.pid },
});
log(`ready: try  curl -s http://127.0.0.1:${ports.api}/health/ready   (Ctrl-C stops everything)`);
