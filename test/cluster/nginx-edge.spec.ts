import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NginxProcess, nginxSettings, renderNginxConfig } from '../../scripts/cluster/nginx.mjs';
import { freePort } from '../../scripts/lib/stack.mjs';

// What nginx says when a request cannot be served by a replica: 503 when not one byte reached a
// replica (nothing processed: retry), 502 when a replica got the request and failed (unknown:
// resend with the same Idempotency-Key).
const dir = mkdtempSync(join(tmpdir(), 'mi-nginx-edge-'));
const servers: Server[] = [];
let nginx: NginxProcess | undefined;
let capped: NginxProcess | undefined;
const held: Socket[] = [];
/** nginx as the cluster runs it: HTTPS, with the run's certificate (trusted by this process, scripts/test.mjs). */
const edgeEnv = { NGINX_TLS_CERT: process.env.MI_TEST_TLS_CERT ?? '', NGINX_TLS_KEY: process.env.MI_TEST_TLS_KEY ?? '' };

afterAll(async () => {
  for (const socket of held) socket.destroy();
  await nginx?.stop();
  await capped?.stop();
  for (const s of servers) s.close();
});

/** A "replica" that takes requests and answers none until the test lets them go. */
async function holdingReplica(): Promise<number> {
  const port = await freePort();
  const server = createServer((socket) => {
    held.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
  return port;
}

/** A "replica" that reads the request and then drops the connection without answering. */
async function droppingReplica(): Promise<number> {
  const port = await freePort();
  const server = createServer((socket) => socket.once('data', () => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
  return port;
}

async function post(port: number) {
  const res = await fetch(`https://127.0.0.1:${port}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"meterId":"x"}' });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), requestId: res.headers.get('x-request-id'), body: (await res.json()) as { error: { code: string } } };
}

describe('nginx when no replica answers', () => {
  it('answers 503 with Retry-After when no replica accepted a connection, 502 when one took the request and failed', async () => {
    const listen = await freePort();
    nginx = new NginxProcess(join(dir, 'nginx'), listen, nginxSettings(edgeEnv));
    await nginx.start([
      { name: 'gone-1', port: await freePort() },
      { name: 'gone-2', port: await freePort() },
    ]);
    for (let i = 0; i < 3; i++) {
      const r = await post(listen);
      expect(r.status).toBe(503);
      expect(r.retryAfter).toBe('1');
      expect(r.requestId).toBeTruthy();
      expect(r.body.error.code).toBe('unavailable');
    }

    await nginx.setUpstreams([
      { name: 'dropping-1', port: await droppingReplica() },
      { name: 'dropping-2', port: await droppingReplica() },
    ]);
    const r = await post(listen);
    expect(r.status).toBe(502);
    expect(r.retryAfter).toBeNull();
    expect(r.body.error.code).toBe('bad_gateway');
  });
});

describe('nginx stamps when it hands a request on', () => {
  it('sends X-Request-Start: t=<its clock, seconds.milliseconds>, overwriting a value the client sent', async () => {
    // A "replica" that records the request's head and answers 202.
    const heads: string[] = [];
    const port = await freePort();
    const server = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (chunk: Buffer) => {
        heads.push(chunk.toString('latin1'));
        socket.end('HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    servers.push(server);
    const listen = await freePort();
    const stamping = new NginxProcess(join(dir, 'nginx-stamp'), listen, nginxSettings(edgeEnv));
    try {
      await stamping.start([]);
      await stamping.setUpstreams([{ name: 'recording', port }]);
      const before = Date.now();
      // An old stamp from the client would make a replica refuse its own request, and a future one would dodge the shedding.
      const res = await fetch(`https://127.0.0.1:${listen}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-start': 't=1000000000.000' }, body: '{}' });
      expect(res.status).toBe(202);
      const stamps = heads.flatMap((h) => [...h.matchAll(/^x-request-start: (.*)\r$/gim)].map((m) => m[1]!));
      expect(stamps).toHaveLength(1);
      expect(stamps[0]).toMatch(/^t=\d+\.\d{3}$/);
      const stampedMs = Number(stamps[0]!.slice(2)) * 1000;
      expect(stampedMs).toBeGreaterThanOrEqual(before - 1_000);
      expect(stampedMs).toBeLessThanOrEqual(Date.now() + 1_000);
    } finally {
      await stamping.stop();
    }
  });
});

describe('nginx with every replica at NGINX_UPSTREAM_MAX_CONNS', () => {
  it('refuses the excess at once with 503 and Retry-After instead of queueing it behind the busy replicas', async () => {
    const listen = await freePort();
    capped = new NginxProcess(join(dir, 'nginx-capped'), listen, nginxSettings({ ...edgeEnv, NGINX_UPSTREAM_MAX_CONNS: '2' }));
    // Started with no replica (its readiness probe through nginx would be held), then given one.
    await capped.start([]);
    await capped.setUpstreams([{ name: 'busy', port: await holdingReplica() }]);
    // Two requests fill the replica's two connections; the replica answers neither.
    const first = [post(listen), post(listen)];
    await expect.poll(() => held.length, { timeout: 5_000 }).toBe(2);
    // The third is refused by nginx itself while the two are still unanswered: not queued.
    const r = await post(listen);
    expect(r.status).toBe(503);
    expect(r.retryAfter).toBe('1');
    expect(r.body.error.code).toBe('unavailable');
    expect(held.length).toBe(2);
    // Nothing was answered for the two in flight: the replica cut them without an answer (502).
    for (const socket of held) socket.destroy();
    for (const p of first) expect((await p).status).toBe(502);
  });

  it('renders max_conns on every replica, none when set to 0, and refuses a value that is not a whole number', () => {
    const upstreams = [{ name: 'a', port: 1 }, { name: 'b', port: 2 }];
    const on = renderNginxConfig({ prefix: dir, listen: 3, upstreams, settings: nginxSettings({ NGINX_TLS: 'off' }) }).main;
    expect(on.match(/max_conns=128;/g)).toHaveLength(2);
    expect(on).toMatch(/zone api 64k;/);
    const off = renderNginxConfig({ prefix: dir, listen: 3, upstreams, settings: nginxSettings({ NGINX_TLS: 'off', NGINX_UPSTREAM_MAX_CONNS: '0' }) }).main;
    expect(off).not.toMatch(/max_conns=/);
    expect(() => nginxSettings({ NGINX_UPSTREAM_MAX_CONNS: '2.5' })).toThrow(/whole number/);
  });

  it('renders TLS unless NGINX_TLS=off, with the certificate, the shared policy and the redirect, and refuses settings that do not fit', () => {
    const upstreams = [{ name: 'a', port: 1 }];
    const plain = renderNginxConfig({ prefix: dir, listen: 3, upstreams, settings: nginxSettings({ NGINX_TLS: 'off' }) }).main;
    expect(plain).toMatch(/listen 127\.0\.0\.1:3 backlog/);
    expect(plain).not.toMatch(/ssl_certificate|return 308/);
    const settings = nginxSettings({ NGINX_TLS: 'on', NGINX_TLS_CERT: '/c/cert.pem', NGINX_TLS_KEY: '/c/key.pem', NGINX_HTTP_PORT: '4' });
    const { main, shared } = renderNginxConfig({ prefix: dir, listen: 3, upstreams, settings });
    expect(main).toMatch(/listen 127\.0\.0\.1:3 ssl backlog/);
    expect(main).toContain('ssl_certificate /c/cert.pem;');
    expect(main).toContain('ssl_certificate_key /c/key.pem;');
    expect(main).toContain(`include ${dir}/shared/tls-policy.conf;`);
    expect(main).toMatch(/listen 127\.0\.0\.1:4;\s+(#.*\s+)?return 308 https:\/\/127\.0\.0\.1:3\$request_uri;/);
    expect(main).toContain('error_page 497 =400 @bad_request;');
    expect(shared['tls-policy.conf']).toMatch(/^ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
    expect(() => renderNginxConfig({ prefix: dir, listen: 3, upstreams, settings: nginxSettings({}) })).toThrow(/certificate/);
    expect(() => nginxSettings({ NGINX_TLS: 'yes' })).toThrow(/on or off/);
    expect(() => nginxSettings({ NGINX_TLS: 'on', NGINX_TLS_CERT: '/c/cert.pem' })).toThrow(/go together/);
    expect(() => nginxSettings({ NGINX_TLS: 'off', NGINX_HTTP_PORT: '4' })).toThrow(/needs NGINX_TLS=on/);
  });
});
