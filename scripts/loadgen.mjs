// `npm run loadgen`: installs and builds what is missing, then runs the load generator
// (dist/apps/loadgen/src/main.js) with the arguments given. Without --url it aims at the cluster
// `npm start` runs here (found through its process table, so other ports work too) and, with
// --verify, checks that cluster's primary unless --database-url says otherwise; with no cluster
// running it says so in one line and exits 1. Node built-ins only until the build exists.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { localCluster, takeDataDir } from './cluster/local-cluster.mjs';
import { ensureBuilt, ensureDependencies, root } from './lib/setup.mjs';

const argv = process.argv.slice(2);
const dataDir = takeDataDir(argv);
ensureDependencies();
ensureBuilt();

const has = (flag) => argv.some((a) => a === flag || a.startsWith(`${flag}=`));
const needsCluster = argv[0] !== 'verify' && !has('--help') && !has('-h') && !has('--url');
if (needsCluster) {
  const found = localCluster(dataDir);
  if (!found.table) {
    console.error(`${found.message}, or pass --url to load another deployment`);
    process.exit(1);
  }
  argv.push('--url', found.table.url);
  // HTTPS with the cluster's own self-signed certificate: trust it besides the system's CAs.
  if (found.table.tls?.selfSigned && !has('--ca')) argv.push('--ca', found.table.tls.cert);
  if (has('--verify') && !has('--database-url') && !process.env.DATABASE_URL && found.table.postgres) argv.push('--database-url', found.table.postgres.primary);
}
const child = spawn(process.execPath, [join(root, 'dist/apps/loadgen/src/main.js'), ...argv], { cwd: root, stdio: 'inherit' });
// A terminal's Ctrl-C reaches the child itself (same process group): wait for its summary. A
// SIGTERM sent to this process alone is passed on.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
