// `npm run migrate`: installs and builds what is missing, then applies the migrations.
//   - With DATABASE_URL (PostgreSQL) or COCKROACH_URL (CockroachDB) set: to that database.
//   - Otherwise: to the database of the cluster `npm start` runs here (found through its process
//     table); with none running it says so in one line and exits 1.
// Node built-ins only until the build exists; the migration runner itself is the compiled one
// the images and `npm start` use (dist/libs/database/src/migrate.main.js).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { databaseEnv, localCluster, takeDataDir } from './cluster/local-cluster.mjs';
import { ensureBuilt, ensureDependencies, root } from './lib/setup.mjs';

const argv = process.argv.slice(2);
const dataDir = takeDataDir(argv);
ensureDependencies();
ensureBuilt();

let env = process.env;
if (!process.env.DATABASE_URL && !process.env.COCKROACH_URL) {
  const found = localCluster(dataDir);
  if (!found.table) {
    console.error(`${found.message}, or set DATABASE_URL (PostgreSQL) or COCKROACH_URL (CockroachDB) to migrate another database`);
    process.exit(1);
  }
  env = { ...process.env, ...databaseEnv(found.table) };
}
const r = spawnSync(process.execPath, [join(root, 'dist/libs/database/src/migrate.main.js'), ...argv], { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
