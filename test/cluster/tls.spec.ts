import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/lib/stack.mjs';
import { authHeaders, testKey } from '../support/auth.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { testRunPrefix } from '../support/readings-factory.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request over HTTPS, trusting `ca` (or the system's store when it is undefined). */
function https(url: string, opts: { method?: string; body?: string; headers?: Record<string, string>; ca?: Buffer }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...opts.headers }, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A bare TLS handshake with the given limits: the protocol and suite agreed, or the error. */
function handshake(port: number, ca: Buffer, opts: { maxVersion?: 'TLSv1.2' | 'TLSv1.3'; minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2'; ciphers?: string }): Promise<{ protocol: string | null; cipher: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts }, () => {
      const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().name };
      socket.destroy();
      resolve(result);
    });
    socket.on('error', (err) => resolve({ error: err.message }));
  });
}

describe('TLS at the edge (the default, NGINX_TLS=on; a self-signed certificate made by the start)', () => {
  let cluster: Cluster;
  let ca: Buffer;
  let httpPort: number;

  beforeAll(async () => {
    httpPort = await freePort();
    // No certificate given: the start makes its own, self-signed, as under a plain `npm start`.
    cluster = await startCluster({ api: 1, writers: 1, env: { NGINX_TLS: 'on', NGINX_TLS_CERT: '', NGINX_TLS_KEY: '', NGINX_HTTP_PORT: String(httpPort) } });
    ca = readFileSync(cluster.table().tls!.cert);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves the API over HTTPS with the certificate in the process table: a reading in, stored, read back', async () => {
    expect(cluster.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(cluster.table().tls?.selfSigned).toBe(true);
    expect((await https(`${cluster.url}/health/live`, { ca })).status).toBe(200);
    const body = JSON.stringify({ meterId: `${testRunPrefix('tls')}-1`, readAt: new Date(Date.now() - 60_000).toISOString(), values: { t1: 42.5 } });
    const res = await https(`${cluster.url}/v1/readings?wait=true`, { method: 'POST', body, headers: authHeaders(), ca });
    expect(res.status).toBe(201);
    const id = (JSON.parse(res.body) as { id: string }).id;
    const back = await https(`${cluster.url}/v1/readings/${id}`, { headers: authHeaders(), ca });
    expect(JSON.parse(back.body)).toMatchObject({ id, status: 'stored', values: { t1: 42.5 } });
  });

  it('is a real certificate check: without trusting it, the client refuses the connection', async () => {
    await expect(https(`${cluster.url}/health/live`, {})).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('speaks TLS 1.3 and 1.2 with forward-secret AEAD suites only; older protocols and weak suites are refused', async () => {
    const port = Number(new URL(cluster.url).port);
    const v13 = await handshake(port, ca, {});
    expect(v13).toMatchObject({ protocol: 'TLSv1.3' });
    const v12 = await handshake(port, ca, { maxVersion: 'TLSv1.2' });
    expect(v12).toMatchObject({ protocol: 'TLSv1.2' });
    expect((v12 as { cipher: string }).cipher).toMatch(/^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    // Not forward secret (static RSA key exchange), and CBC: offered alone, nginx refuses (an alert from the server).
    expect(await handshake(port, ca, { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES256-SHA256' })).toMatchObject({ error: expect.stringMatching(/alert/i) });
    // TLS 1.1 from a client willing to speak it (security level 0): refused by the server, not by this client.
    expect(await handshake(port, ca, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' as 'TLSv1.2', ciphers: 'DEFAULT@SECLEVEL=0' })).toMatchObject({ error: expect.stringMatching(/alert|protocol version/i) });
  });

  it('takes the load generator over HTTPS (--ca): every acknowledged reading stored once', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['dist/apps/loadgen/src/main.js', '--url', cluster.url, '--ca', cluster.table().tls!.cert, '--rate', '100', '--duration', '3', '--batch-share', '0.1', '--verify', '--database-url', cluster.table().postgres.primary, '--json', '--quiet'],
      { env: { ...process.env, MI_API_KEY: testKey() }, maxBuffer: 16 * 1024 * 1024 },
    );
    const summary = JSON.parse(stdout) as { readings: { acknowledged: number; indeterminate: number }; verify: { ok: boolean; lost: string[]; duplicated: string[] } };
    expect(summary.readings.acknowledged).toBeGreaterThan(200);
    expect(summary.readings.indeterminate).toBe(0);
    expect(summary.verify.ok).toBe(true);
    expect([summary.verify.lost, summary.verify.duplicated]).toEqual([[], []]);
  });

  it('redirects plain HTTP on NGINX_HTTP_PORT to HTTPS with 308 (a POST stays a POST) and serves nothing over it', async () => {
    const res = await new Promise<{ status: number; location?: string; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: httpPort, method: 'POST', path: '/v1/readings?x=1', headers: { host: `127.0.0.1:${httpPort}`, 'content-type': 'application/json' } }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, location: r.headers.location, body }));
      });
      req.on('error', reject);
      req.end('{}');
    });
    expect(res.status).toBe(308);
    expect(res.location).toBe(`${cluster.url}/v1/readings?x=1`);
    // Plain HTTP to the HTTPS port: the API's JSON 400, not nginx's HTML page.
    const plain = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: Number(new URL(cluster.url).port), path: '/health/live' }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.body).error.code).toBe('bad_request');
  });
});
