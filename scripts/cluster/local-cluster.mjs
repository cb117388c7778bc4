// The cluster `npm start` runs on this machine, as the helper commands (`npm run cluster`,
// `npm run migrate`, `npm run loadgen`) find it: through the process table in the data folder
// (.data/ unless --data-dir or DATA_DIR says otherwise). Node built-ins only.
import { join, relative, resolve } from 'node:path';
import { gitIgnoredDataDir } from '../lib/setup.mjs';
import { readTable } from './process-table.mjs';
import { liveSupervisor } from './stop-cluster.mjs';

/** Takes `--data-dir DIR` out of `argv` (in place) and returns the data folder to use. */
export function takeDataDir(argv) {
  const i = argv.indexOf('--data-dir');
  if (i >= 0) {
    const dir = argv[i + 1];
    argv.splice(i, 2);
    if (dir) return resolve(dir);
  }
  return resolve(process.env.DATA_DIR ?? gitIgnoredDataDir());
}

/**
 * `{ table }` when a supervisor runs on `dataDir`, otherwise `{ message }`: one line saying that
 * no cluster is running and what to do about it.
 */
export function localCluster(dataDir) {
  const table = readTable(dataDir);
  const where = relative(process.cwd(), dataDir) || '.';
  if (!table) return { message: `no cluster is running (no process table in ${where}/); start one with npm start` };
  if (!liveSupervisor(dataDir)) {
    return { message: `no cluster is running (the supervisor of the last one in ${where}/, pid ${table.supervisor?.pid}, is gone; npm start stops whatever it left and starts afresh)` };
  }
  return { table };
}

/** The environment that points the database tools at this cluster's database. */
export function databaseEnv(table) {
  if (table.db === 'cockroach') return { DB_BACKEND: 'cockroach', COCKROACH_URL: table.cockroach.nodes[0].sql, DATABASE_URL: '', DATABASE_REPLICA_URL: '' };
  return { DB_BACKEND: 'postgres', DATABASE_URL: table.postgres.primary, DATABASE_REPLICA_URL: table.postgres.replica ?? '' };
}

export function socketOf(dataDir) {
  return join(dataDir, 'supervisor.sock');
}
