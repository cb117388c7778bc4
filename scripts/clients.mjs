// `npm run clients -- <command>`: installs and builds what is missing, then runs the client and
// key manager (dist/apps/clients/src/main.js; its usage: `npm run clients -- --help`).
//   - With DATABASE_URL (PostgreSQL) or COCKROACH_URL (CockroachDB) set: on that database.
//   - Otherwise: on the database of the cluster `npm start` runs here (its process table); with
//     none running it says so in one line and exits 1.
// Node built-ins only until the build exists.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { databaseEnv, localCluster, takeDataDir } from './cluster/local-cluster.mjs';
import { ensureBuilt, ensureDependencies, root } from './lib/setup.mjs';

const argv = process.argv.slice(2);
const dataDir = takeDataDir(argv);
ensureDependencies();
ensureBuilt();

let env = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' };
const help = argv.length === 0 || argv.includes('--help') || argv.includes('-h');
if (!help && !process.env.DATABASE_URL && !process.env.COCKROACH_URL) {
  const found = localCluster(dataDir);
  if (!found.table) {
    console.error(`${found.message}, or set DATABASE_URL (PostgreSQL) or COCKROACH_URL (CockroachDB) to manage the clients of another database`);
    process.exit(1);
  }
  env = { ...env, ...databaseEnv(found.table) };
}
const r = spawnSync(process.execPath, [join(root, 'dist/apps/clients/src/main.js'), ...argv], { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
