// `npm start`'s command line: options, their defaults from the environment, and the checks made
// before anything is installed, built or started (a bad value exits with code 2 and one line).
// Node built-ins only (and modules that use only them): it runs before the npm install.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findCockroachBin } from '../lib/cockroach.mjs';
import { gitIgnoredDataDir } from '../lib/setup.mjs';

export function startOptions() {
  const { values: args } = parseArgs({
    options: {
      api: { type: 'string', default: process.env.API_REPLICAS ?? '2' },
      writers: { type: 'string', default: process.env.WRITERS ?? '1' },
      port: { type: 'string', default: process.env.NGINX_PORT ?? '8080' },
      db: { type: 'string', default: process.env.DB_BACKEND ?? 'postgres' },
      'data-dir': { type: 'string', default: process.env.DATA_DIR ?? gitIgnoredDataDir() },
      fresh: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });

  if (args.help) {
    console.log(`usage: npm start -- [--api N] [--writers M] [--port 8080] [--db postgres|cockroach] [--fresh] [--data-dir DIR]
  --api N       API replicas behind nginx (default 2)
  --writers M   writer processes (default 1)
  --port        port nginx listens on (default 8080)
  --db          postgres (primary + streaming replica, default) or cockroach (a local three-node
                CockroachDB cluster; needs a cockroach binary on PATH or COCKROACH_BIN)
  --fresh       wipe the data folder (databases, queue, logs) before starting
  --data-dir    where data, logs and the process table live (default .data/)
Then: npm run cluster -- status | scale api=N writers=M`);
    process.exit(0);
  }
  if (!['postgres', 'cockroach'].includes(args.db)) {
    console.error(`--db ${args.db}: expected postgres or cockroach`);
    process.exit(2);
  }
  const useCockroach = args.db === 'cockroach';
  let cockroachBin;
  if (useCockroach) {
    // Checked before anything is installed, built or started: no binary means a plain stop, never PostgreSQL instead.
    const found = findCockroachBin();
    if (found.problem) {
      console.error(`--db cockroach: ${found.problem}\nNothing was started. (npm start without --db cockroach runs the PostgreSQL backend.)`);
      process.exit(2);
    }
    cockroachBin = found.bin;
  }
  const wanted = { api: Number(args.api), writers: Number(args.writers) };
  for (const [k, v] of Object.entries(wanted)) {
    if (!Number.isInteger(v) || v < 1 || v > 32) {
      console.error(`--${k === 'api' ? 'api' : 'writers'} must be a whole number from 1 to 32`);
      process.exit(2);
    }
  }
  const dataDir = resolve(args['data-dir']);
  const ports = {
    nginx: Number(args.port),
    ...(useCockroach ? {} : { pg: Number(process.env.PG_PORT ?? 55432), replica: Number(process.env.PG_REPLICA_PORT ?? 55433) }),
    redis: Number(process.env.REDIS_PORT ?? 56379),
  };
  return { fresh: args.fresh, useCockroach, cockroachBin, wanted, dataDir, ports };
}
