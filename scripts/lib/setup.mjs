// Makes a fresh machine ready: npm dependencies, a current build, and the Debian packages
// the local stack needs. Shared by `npm start` and `npm test`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const isRoot = process.getuid?.() === 0;

function say(message) {
  process.stderr.write(`[setup] ${message}\n`);
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${r.status}`);
}

function mtime(path) {
  return existsSync(path) ? statSync(path).mtimeMs : 0;
}

function newestIn(dir, filter) {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestIn(path, filter));
    else if (filter(path)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * `npm ci` when node_modules is missing or older than the lock file: exactly the locked versions,
 * and a lock out of step with package.json is an error rather than silently rewritten. (The lock
 * lists the optional binaries of every platform; without them npm 11's ci refuses it, npm/cli#8805,
 * and lockfile.spec.mjs keeps it that way.)
 */
export function ensureDependencies() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  if (mtime(installed) >= mtime(join(root, 'package-lock.json')) && existsSync(join(root, 'node_modules', '.bin', 'tsc'))) return;
  say('installing npm dependencies (npm ci)');
  sh('npm', ['ci', '--no-audit', '--no-fund']);
}

/** Compiles with tsc when any source under apps/ or libs/ is newer than the last build. */
export function ensureBuilt() {
  const stamp = join(root, 'dist', '.tsbuildinfo.build');
  const sources = Math.max(
    newestIn(join(root, 'apps'), (p) => p.endsWith('.ts')),
    newestIn(join(root, 'libs'), (p) => p.endsWith('.ts')),
    mtime(join(root, 'tsconfig.json')),
    mtime(join(root, 'tsconfig.build.json')),
  );
  if (mtime(stamp) >= sources && existsSync(join(root, 'dist', 'apps', 'api', 'src', 'main.js'))) return;
  say('building (tsc -p tsconfig.build.json)');
  sh(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json']);
}

function has(binary) {
  return ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(':')].some((d) => d && existsSync(join(d, binary)));
}

function hasPostgres() {
  if (process.env.PG_BIN_DIR && existsSync(join(process.env.PG_BIN_DIR, 'initdb'))) return true;
  if (existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))) return true;
  return has('initdb') && has('pg_ctl') && has('pg_basebackup');
}

/**
 * Installs missing Debian packages when running as root; otherwise stops with the exact
 * command to run. `what` lists the binaries needed: redis-server, postgres, nginx.
 */
export function ensureSystemPackages(what) {
  const wanted = [];
  if (what.includes('redis-server') && !(has('redis-server') && has('redis-cli'))) wanted.push('redis-server');
  if (what.includes('postgres') && !hasPostgres()) wanted.push('postgresql');
  if (what.includes('nginx') && !has('nginx')) wanted.push('nginx');
  if (what.includes('wrk') && !has('wrk')) wanted.push('wrk');
  // The self-signed certificate of the HTTPS edge is made with the openssl command.
  if (what.includes('openssl') && !has('openssl')) wanted.push('openssl');
  if (!existsSync('/usr/sbin/runuser') && !existsSync('/usr/bin/runuser') && isRoot) wanted.push('util-linux');
  if (wanted.length === 0) return;
  const command = `apt-get update && apt-get install -y --no-install-recommends ${wanted.join(' ')}`;
  if (!isRoot) {
    throw new Error(`missing system packages: ${wanted.join(', ')}. Install them with:\n  sudo sh -c '${command}'`);
  }
  say(`installing ${wanted.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  sh('apt-get', ['update', '-qq'], { env });
  sh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...wanted], { env });
  // Debian starts the packaged services on install; meter-intake runs its own instances.
  for (const service of ['redis-server', 'nginx', 'postgresql']) {
    if (wanted.includes(service === 'postgresql' ? 'postgresql' : service)) {
      spawnSync('service', [service, 'stop'], { stdio: 'ignore' });
    }
  }
}

export function gitIgnoredDataDir() {
  return join(root, '.data');
}

export function rel(path) {
  return relative(process.cwd(), path) || '.';
}

export function commandExists(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
