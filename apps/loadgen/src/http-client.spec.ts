import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpClient, parseAnswer } from './http-client.js';

// The generator's client against a real node:http server on a free port.
let server: Server | undefined;
let sockets: Set<Socket>;

async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<string> {
  sockets = new Set();
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

describe('HttpClient', () => {
  it('sends method, path, headers and body, and reads status and body', async () => {
    const url = await serve((req, res, body) => {
      res.writeHead(202, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ method: req.method, url: req.url, key: req.headers['idempotency-key'], type: req.headers['content-type'], body }));
    });
    const client = new HttpClient(url, 4);
    const res = await client.send('POST', '/v1/readings', '{"t1":"5"}', { 'idempotency-key': 'k-1' });
    client.close();
    expect(res.status).toBe(202);
    expect(res.headers['retry-after']).toBe('1');
    expect(JSON.parse(res.body)).toEqual({ method: 'POST', url: '/v1/readings', key: 'k-1', type: 'application/json', body: '{"t1":"5"}' });
  });

  it('reuses one connection for requests in sequence', async () => {
    const url = await serve((_req, res) => res.end('ok'));
    const client = new HttpClient(url, 4);
    for (let i = 0; i < 20; i++) expect((await client.send('GET', `/${i}`)).body).toBe('ok');
    client.close();
    expect(sockets.size).toBe(1);
  });

  it('opens at most maxSockets connections and answers every request', async () => {
    const url = await serve((req, res) => setTimeout(() => res.end(req.url), 5));
    const client = new HttpClient(url, 3);
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => client.send('GET', `/${i}`)));
    client.close();
    expect(answers.map((a) => a.body)).toEqual(Array.from({ length: 30 }, (_, i) => `/${i}`));
    expect(sockets.size).toBe(3);
  });

  it('reads a chunked body, and a body split over many packets', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('héllo ');
      setTimeout(() => res.end('wörld'), 10);
    });
    const client = new HttpClient(url, 1);
    const first = await client.send('GET', '/');
    const second = await client.send('GET', '/');
    client.close();
    expect(first).toMatchObject({ status: 200, body: 'héllo wörld' });
    expect(second.body).toBe('héllo wörld');
    expect(sockets.size).toBe(1);
  });

  it('opens a new connection after the server says Connection: close', async () => {
    const url = await serve((_req, res) => {
      res.setHeader('connection', 'close');
      res.end('bye');
    });
    const client = new HttpClient(url, 1);
    expect((await client.send('GET', '/')).body).toBe('bye');
    expect((await client.send('GET', '/')).body).toBe('bye');
    client.close();
    expect(sockets.size).toBe(2);
  });

  it('gives status 0 when the connection is cut before the answer, and carries on', async () => {
    let n = 0;
    const url = await serve((req, res) => {
      if (n++ === 0) req.socket.destroy();
      else res.end('fine');
    });
    const client = new HttpClient(url, 1);
    expect((await client.send('POST', '/', '{}')).status).toBe(0);
    expect(await client.send('GET', '/')).toMatchObject({ status: 200, body: 'fine' });
    client.close();
  });

  it('gives status 0 when nothing listens', async () => {
    // A port that was just listened on and is now closed: nothing answers there.
    const url = await serve((_req, res) => res.end());
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
    const refused = new HttpClient(url, 2);
    expect((await refused.send('GET', '/')).status).toBe(0);
    refused.close();
  });

  it('gives status 0 when the answer is not HTTP', async () => {
    // resume(): a socket nobody reads never sees the client's FIN, and close() would wait for it.
    const garbage = createTcpServer((s) => s.resume().end('SSH-2.0-OpenSSH\r\n\r\n'));
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    const client = new HttpClient(`http://127.0.0.1:${(garbage.address() as AddressInfo).port}`, 1);
    expect((await client.send('GET', '/')).status).toBe(0);
    client.close();
    await new Promise((resolve) => garbage.close(resolve));
  });

  it('gives status 0 when no answer comes within the timeout', async () => {
    const url = await serve(() => {});
    const client = new HttpClient(url, 1, 200);
    const started = performance.now();
    expect((await client.send('GET', '/')).status).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    client.close();
  });

  it('survives the server closing an idle connection (its keep-alive timeout)', async () => {
    const url = await serve((_req, res) => res.end('again'));
    const client = new HttpClient(url, 1);
    expect((await client.send('GET', '/')).body).toBe('again');
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await client.send('GET', '/')).body).toBe('again');
    client.close();
    expect(sockets.size).toBe(2);
  });
});

describe('parseAnswer', () => {
  it('waits for the whole head and body', () => {
    expect(parseAnswer(Buffer.from('HTTP/1.1 202 Accepted\r\ncontent-length: 4\r\n'), false, false)).toBeUndefined();
    expect(parseAnswer(Buffer.from('HTTP/1.1 202 Accepted\r\ncontent-length: 4\r\n\r\nab'), false, false)).toBeUndefined();
    expect(parseAnswer(Buffer.from('HTTP/1.1 202 Accepted\r\ncontent-length: 4\r\n\r\nabcd'), false, false)).toMatchObject({ result: { status: 202, body: 'abcd' }, keepAlive: true });
  });

  it('takes a body without length as ending with the connection, and HTTP/1.0 as not kept alive', () => {
    const buf = Buffer.from('HTTP/1.0 503 Service Unavailable\r\nretry-after: 1\r\n\r\n{"error":{}}');
    expect(parseAnswer(buf, false, false)).toBeUndefined();
    expect(parseAnswer(buf, false, true)).toMatchObject({ result: { status: 503, body: '{"error":{}}', headers: { 'retry-after': '1' } }, keepAlive: false });
  });

  it('reads chunked bodies with trailers, and refuses a malformed chunk size', () => {
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n'), false, false)).toBeUndefined();
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n'), false, false)?.result.body).toBe('abc');
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'), false, false)).toMatchObject({ result: { status: 0 }, keepAlive: false });
  });
});
