import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NginxProcess, nginxSettings } from '../../scripts/cluster/nginx.mjs';
import { freePort } from '../../scripts/lib/stack.mjs';

// What nginx says when a request cannot be served by a replica: 503 when not one byte reached a
// replica (nothing processed: retry), 502 when a replica got the request and failed (unknown:
// resend with the same Idempotency-Key).
const dir = mkdtempSync(join(tmpdir(), 'mi-nginx-edge-'));
const servers: Server[] = [];
let nginx: NginxProcess | undefined;

afterAll(async () => {
  await nginx?.stop();
  for (const s of servers) s.close();
});

/** A "replica" that reads the request and then drops the connection without answering. */
async function droppingReplica(): Promise<number> {
  const port = await freePort();
  const server = createServer((socket) => socket.once('data', () => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
  return port;
}

async function post(port: number) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"meterId":"x"}' });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), requestId: res.headers.get('x-request-id'), body: (await res.json()) as { error: { code: string } } };
}

describe('nginx when no replica answers', () => {
  it('answers 503 with Retry-After when no replica accepted a connection, 502 when one took the request and failed', async () => {
    const listen = await freePort();
    nginx = new NginxProcess(join(dir, 'nginx'), listen, nginxSettings({}));
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
