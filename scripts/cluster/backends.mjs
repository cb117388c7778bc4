// The database backends of `npm start`: PostgreSQL (a primary and a streaming replica, with Redis)
// or a local three-node CockroachDB cluster (with Redis). Each start returns what the supervisor
// needs from it: the environment of the parts, the migration's environment, its rows of the
// process table and of the ready table, its health probe and its watchdog step.
// Node built-ins only (and modules that use only them): it is imported before the npm install.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cockroachVersion, startCockroachCluster } from '../lib/cockroach.mjs';
import { rel } from '../lib/setup.mjs';
import { appendfsyncFromEnv, RedisInstance, startStack } from '../lib/stack.mjs';
import { identity } from './process-table.mjs';

/**
 * @typedef {object} BackendContext
 * @property {string} dataDir
 * @property {string} logsDir
 * @property {{ pg?: number, replica?: number, redis: number }} ports
 * @property {(message: string) => void} log
 * @property {string} [cockroachBin]
 * @property {Set<string>} held      parts an outage drill holds down (the watchdog leaves them)
 * @property {() => boolean} stopping
 * @property {() => void} saveProcessTable
 * @property {(stack: object) => void} setStack   the servers' handles, as soon as they exist (a stop during start-up stops them)
 * @property {(node: object) => void} onCockroachSpawn
 */

/** @param {BackendContext} ctx */
export async function startPostgresBackend(ctx) {
  const { dataDir, ports, log, held } = ctx;
  log('starting PostgreSQL primary, streaming replica and Redis');
  const stack = await startStack({ dir: dataDir, pgPort: ports.pg, replicaPort: ports.replica, redisPort: ports.redis, appendfsync: appendfsyncFromEnv(), log });
  ctx.setStack(stack);
  const env = { DB_BACKEND: 'postgres', DATABASE_URL: stack.databaseUrl, DATABASE_REPLICA_URL: stack.replicaUrl };
  return {
    env: () => env,
    migrateEnv: env,
    table: () => ({ postgres: { primary: stack.databaseUrl, replica: stack.replicaUrl, logs: [stack.primary.logFile, stack.replica.logFile] } }),
    async health(table) {
      table.postgres.health = (await stack.primary.psql('SELECT 1').then(() => 'ready', () => 'down')) + ' / replica ' + (await stack.replica.psql('SELECT 1').then(() => 'ready', () => 'down'));
    },
    rows: () => [
      ['postgres primary', stack.databaseUrl, '-', rel(stack.primary.logFile)],
      ['postgres replica', stack.replicaUrl, '-', rel(stack.replica.logFile)],
    ],
    async watch() {
      for (const pg of [stack.primary, stack.replica]) {
        if (pg === stack.primary && held.has('postgres')) continue;
        if (!ctx.stopping() && !(await pg.isRunning())) {
          log(`postgres ${pg.name} is not running; starting it (log: ${rel(pg.logFile)})`);
          await pg.start().catch((err) => log(`postgres ${pg.name} did not start: ${err.message}`));
        }
      }
    },
  };
}

/** @param {BackendContext} ctx */
export async function startCockroachBackend(ctx) {
  const { dataDir, logsDir, ports, log, cockroachBin } = ctx;
  let version;
  try {
    version = await cockroachVersion(cockroachBin);
  } catch (err) {
    throw Object.assign(new Error(`--db cockroach: ${cockroachBin} does not run (${err.message.split('\n')[0]}). Get a CockroachDB binary for this platform from https://www.cockroachlabs.com/docs/releases/`), { exitCode: 2 });
  }
  log(`starting Redis and a three-node CockroachDB cluster (${cockroachBin}, ${version})`);
  const redis = new RedisInstance(join(dataDir, 'redis'), ports.redis, join(logsDir, 'redis.log'), appendfsyncFromEnv());
  mkdirSync(redis.dir, { recursive: true });
  const stack = { redis, redisUrl: redis.url, async stop() { await redis.stop(); } };
  ctx.setStack(stack);
  await redis.start();
  ctx.saveProcessTable();
  const cluster = await startCockroachCluster({
    bin: cockroachBin,
    dir: join(dataDir, 'cockroach'),
    logsDir: join(logsDir, 'cockroach'),
    log,
    onSpawn: ctx.onCockroachSpawn,
  }).catch((err) => {
    throw new Error(`CockroachDB did not start: ${err.message}`);
  });
  stack.stop = async () => {
    await redis.stop();
    await cluster.stop();
  };
  return {
    // Each part talks to one node, round robin, so the load spreads over the cluster. (A node that
    // stops takes its clients' database access with it until the watchdog restarts it; in
    // production put a load balancer such as HAProxy in front of all nodes.)
    env: (i) => ({ DB_BACKEND: 'cockroach', COCKROACH_URL: cluster.urls[i % cluster.urls.length], DATABASE_URL: '', DATABASE_REPLICA_URL: '' }),
    migrateEnv: { DB_BACKEND: 'cockroach', COCKROACH_URL: cluster.url, DATABASE_URL: '', DATABASE_REPLICA_URL: '' },
    table: () => ({ cockroach: { version, nodes: cluster.nodes.map((n) => ({ name: n.name, sql: n.url, console: n.httpUrl, ...identity(n.child?.pid), log: n.logDir })) } }),
    async health(table) {
      const states = await Promise.all(cluster.nodes.map((n) => n.select1().then(() => 'ready', () => 'down')));
      states.forEach((state, i) => (table.cockroach.nodes[i].health = state));
    },
    rows: () => cluster.nodes.map((n) => [n.name, n.url, n.child?.pid ?? '-', rel(n.logDir)]),
    async watch() {
      for (const n of cluster.nodes) {
        if (!ctx.stopping() && !n.running) {
          log(`${n.name} exited; restarting it (log: ${rel(n.logFile)})`);
          n.start();
          ctx.saveProcessTable();
        }
      }
    },
  };
}
