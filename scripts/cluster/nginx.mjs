// Renders nginx/nginx.conf.template and the shared parts in nginx/shared/ for the native cluster,
// and controls the nginx process.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { root } from '../lib/setup.mjs';
import { findBin, waitFor } from '../lib/stack.mjs';
import { tlsSettings } from './tls.mjs';

const isRoot = process.getuid?.() === 0;

/** NGINX_UPSTREAM_MAX_CONNS: a whole number of connections, 0 for no cap; anything else stops the start. */
function maxConns(value = '128') {
  if (!/^\d+$/.test(value)) throw new Error(`NGINX_UPSTREAM_MAX_CONNS must be a whole number of connections (0: no cap), not "${value}"`);
  return Number(value);
}

/** nginx settings: the body limit matches the API's (HTTP_BODY_LIMIT_BYTES) so 413 comes from the edge. */
export function nginxSettings(env = process.env) {
  return {
    maxBody: env.NGINX_MAX_BODY ?? `${Math.ceil(Number(env.HTTP_BODY_LIMIT_BYTES ?? 1_048_576) / 1024)}k`,
    clientTimeout: env.NGINX_CLIENT_TIMEOUT ?? '10s',
    clientKeepalive: env.NGINX_CLIENT_KEEPALIVE ?? '0',
    ratePerSecond: Number(env.NGINX_RATE_PER_SECOND ?? 2000),
    rateBurst: Number(env.NGINX_RATE_BURST ?? 4000),
    workerProcesses: env.NGINX_WORKER_PROCESSES ?? 'auto',
    // Concurrent connections nginx keeps open to each replica (0: no limit). Past it, on every
    // replica, nginx refuses at once (503 + Retry-After via @bad_gateway) instead of letting the
    // excess queue inside the replicas: the spike lever (docs/PERFORMANCE.md).
    upstreamMaxConns: maxConns(env.NGINX_UPSTREAM_MAX_CONNS),
    accessLog: env.NGINX_ACCESS_LOG === 'true',
    servedBy: env.SERVED_BY_HEADER !== 'false',
    // { enabled, cert, key, httpPort }: the caller fills cert and key (ensureCertificate) when TLS is on.
    tls: tlsSettings(env),
  };
}

/** The TLS parts of the native config: nothing with TLS off. */
function tlsValues(prefix, listen, tls) {
  if (!tls.enabled) return { NGINX_LISTEN_TLS: '', NGINX_TLS_DIRECTIVES: '', NGINX_HTTP_REDIRECT: '' };
  if (!tls.cert || !tls.key) throw new Error('NGINX_TLS=on needs a certificate and key (ensureCertificate, or NGINX_TLS_CERT and NGINX_TLS_KEY)');
  const redirect = tls.httpPort
    ? [
        '',
        '  # Plain HTTP only redirects (308 keeps the method and body); nothing is served over it.',
        '  server {',
        `    listen 127.0.0.1:${tls.httpPort};`,
        // The one address nginx listens on, not the client's Host header.
        `    return 308 https://127.0.0.1:${listen}$request_uri;`,
        '  }',
      ].join('\n')
    : '';
  return {
    NGINX_LISTEN_TLS: ' ssl',
    NGINX_TLS_DIRECTIVES: [
      `    ssl_certificate ${tls.cert};`,
      `    ssl_certificate_key ${tls.key};`,
      `    include ${prefix}/shared/tls-policy.conf;`,
      // Plain HTTP sent to this port (nginx's 497): the JSON 400, not nginx's HTML page.
      '    error_page 497 =400 @bad_request;',
    ].join('\n'),
    NGINX_HTTP_REDIRECT: redirect,
  };
}

/**
 * The native cluster's nginx files: nginx.conf and shared/<name>.conf, from the templates. One
 * placeholder syntax for both configs, ${NGINX_NAME} (what the nginx image's envsubst fills under
 * compose); a placeholder with no value is an error, never left in the config.
 */
export function renderNginxConfig({ prefix, listen, upstreams, settings }) {
  const servers = upstreams.length
    ? upstreams.map((u) => `    server 127.0.0.1:${u.port} max_fails=3 fail_timeout=2s${settings.upstreamMaxConns > 0 ? ` max_conns=${settings.upstreamMaxConns}` : ''};  # ${u.name}`).join('\n')
    : '    server 127.0.0.1:9 down;  # no replica yet';
  const values = {
    NGINX_WORKER_PROCESSES: settings.workerProcesses,
    NGINX_USER_DIRECTIVE: isRoot ? 'user nobody nogroup;' : '',
    NGINX_PREFIX: prefix,
    NGINX_ACCESS_LOG: settings.accessLog ? `${prefix}/access.log meter_json buffer=64k flush=1s` : 'off',
    NGINX_MAX_BODY: settings.maxBody,
    NGINX_CLIENT_TIMEOUT: settings.clientTimeout,
    NGINX_CLIENT_KEEPALIVE: settings.clientKeepalive,
    NGINX_RATE_PER_SECOND: String(settings.ratePerSecond),
    NGINX_RATE_BURST: String(settings.rateBurst),
    NGINX_UPSTREAM_SERVERS: servers,
    NGINX_LISTEN: `127.0.0.1:${listen}`,
    // The replicas set X-Served-By themselves; hiding it here turns it off for clients.
    NGINX_SERVED_BY_DIRECTIVE: settings.servedBy ? '' : '      proxy_hide_header X-Served-By;',
    ...tlsValues(prefix, listen, settings.tls),
  };
  const render = (file) =>
    readFileSync(file, 'utf8').replace(/\$\{([A-Z_]+)\}/g, (_, name) => {
      if (!(name in values)) throw new Error(`nginx template ${file}: no value for \${${name}}`);
      return values[name];
    });
  const sharedDir = join(root, 'nginx', 'shared');
  const shared = Object.fromEntries(
    readdirSync(sharedDir)
      .filter((f) => f.endsWith('.conf.template'))
      .map((f) => [f.replace(/\.template$/, ''), render(join(sharedDir, f))]),
  );
  return { main: render(join(root, 'nginx', 'nginx.conf.template')), shared };
}

/** The nginx master in the foreground (daemon off), reloaded with SIGHUP when the upstreams change. */
export class NginxProcess {
  constructor(prefix, listen, settings) {
    Object.assign(this, { prefix, listen, settings, upstreams: [] });
    this.confFile = join(prefix, 'nginx.conf');
    this.logFile = join(prefix, 'error.log');
  }

  writeConfig() {
    for (const d of ['tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) {
      const dir = join(this.prefix, d);
      mkdirSync(dir, { recursive: true });
      if (isRoot) chownSync(dir, 65534, 65534);
    }
    const { main, shared } = renderNginxConfig({ prefix: this.prefix, listen: this.listen, upstreams: this.upstreams, settings: this.settings });
    mkdirSync(join(this.prefix, 'shared'), { recursive: true });
    for (const [name, text] of Object.entries(shared)) writeFileSync(join(this.prefix, 'shared', name), text);
    writeFileSync(this.confFile, main);
    const test = spawnSync(findBin('nginx', 'apt-get install -y nginx'), ['-t', '-q', '-p', this.prefix, '-c', this.confFile], { encoding: 'utf8' });
    if (test.status !== 0) throw new Error(`nginx rejected the generated config: ${test.stderr}`);
  }

  async start(upstreams) {
    this.upstreams = upstreams;
    this.writeConfig();
    const out = openSync(join(this.prefix, 'nginx.out.log'), 'a');
    this.child = spawn(findBin('nginx', 'apt-get install -y nginx'), ['-p', this.prefix, '-c', this.confFile], { stdio: ['ignore', out, out], detached: true, cwd: this.prefix });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    await waitFor('nginx', async () => {
      if (this.child.exitCode !== null) throw Object.assign(new Error(`nginx exited; see ${this.logFile}`), { fatal: true });
      // A TCP connect, not an HTTP request: the port may speak TLS with a certificate this process does not trust.
      return new Promise((resolve) => {
        const socket = connect(this.listen, '127.0.0.1');
        socket.setTimeout(1_000, () => socket.destroy());
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
        socket.once('close', () => resolve(false));
      });
    }, 15_000);
  }

  /** Workers of the current and previous generations; after a reload the old ones finish their requests, then exit. */
  workerCount() {
    const r = spawnSync('pgrep', ['-P', String(this.child.pid)], { encoding: 'utf8' });
    return r.stdout.split('\n').filter(Boolean).length;
  }

  /**
   * Swaps the upstream list with a graceful reload and resolves once the old workers have
   * finished their in-flight requests and exited, so a removed replica gets nothing more.
   */
  async setUpstreams(upstreams) {
    this.upstreams = upstreams;
    this.writeConfig();
    const before = this.workerCount();
    this.child.kill('SIGHUP');
    // New workers start alongside the old ones; wait for the count to grow, then to settle back.
    await waitFor('nginx reload to start new workers', () => this.workerCount() > before || this.workerCount() === 0, 5_000, 20).catch(() => undefined);
    await waitFor('old nginx workers to finish', () => this.workerCount() <= before, 30_000, 50);
  }

  /** Graceful quit: stop accepting, finish in-flight requests, exit. */
  async stop(timeoutMs = 15_000) {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGQUIT');
    // The whole process group (it was spawned detached): the workers of a killed master would
    // otherwise go on serving and keep the port.
    const timer = setTimeout(() => {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }, timeoutMs);
    await this.exited;
    clearTimeout(timer);
    await sleep(10);
  }
}

export function nginxAvailable() {
  return existsSync('/usr/sbin/nginx') || spawnSync('sh', ['-c', 'command -v nginx']).status === 0;
}
