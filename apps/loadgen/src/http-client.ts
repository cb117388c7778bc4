import { connect, isIP, type Socket } from 'node:net';
import { createSecureContext, rootCertificates, type SecureContext, connect as tlsConnect } from 'node:tls';

export interface HttpResult {
  status: number;
  body: string;
  headers: Record<string, string | undefined>;
}

const NO_ANSWER: HttpResult = { status: 0, body: '', headers: {} };
const HEADER_END = Buffer.from('\r\n\r\n');

interface Pending {
  head: string;
  body: string | undefined;
  noBody: boolean;
  resolve: (r: HttpResult) => void;
}

/**
 * A minimal HTTP/1.1 keep-alive client on plain sockets, for the load generator only.
 *
 * Why not node:http: the generator shares the 2 cores with the system it measures, and
 * node:http's client (request objects, the header parser, the agent's bookkeeping, a timer per
 * request) cost more CPU per request than the API replica spent answering it. This client
 * writes each request as one string, reads status, Content-Length or chunked bodies, and
 * `Connection: close`, and nothing else: no redirects, no upgrades, no pipelining (one request
 * per connection at a time, like an agent with keep-alive). Status 0 stands for "no answer"
 * (refused, reset, closed mid-answer, timed out): the reading's outcome is indeterminate.
 * An https:// URL gets TLS, verified against the system's CAs plus `ca`, and every new
 * connection offers the last session for resumption, as HTTP client libraries do.
 */
export class HttpClient {
  private readonly host: string;
  private readonly port: number;
  /** The Host header: the URL's host as written, brackets and port included. */
  private readonly hostHeader: string;
  /** The last connection error (a refused connection, an untrusted certificate), for the caller to report. */
  lastError: string | undefined;
  private readonly idle: Connection[] = [];
  private readonly waiting: Pending[] = [];
  private open = 0;
  private closed = false;
  private readonly defaultHead: string;
  private readonly tls: boolean;
  private session: Buffer | undefined;
  /** Built once: a secure context with the system's CAs plus `ca` costs milliseconds to make, per connection that would be the generator's bottleneck. */
  private readonly secureContext: SecureContext | undefined;

  constructor(
    baseUrl: string,
    private readonly maxSockets: number,
    private readonly timeoutMs = 30_000,
    defaultHeaders: Record<string, string> = {},
    ca?: Buffer,
  ) {
    // Sent with every request (the client key): formatted once, not per request.
    this.defaultHead = Object.entries(defaultHeaders)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`the load generator speaks HTTP and HTTPS, not ${url.protocol}`);
    this.tls = url.protocol === 'https:';
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.hostHeader = url.host;
    this.secureContext = this.tls && ca ? createSecureContext({ ca: [...rootCertificates, ca.toString('utf8')] }) : undefined;
    this.port = Number(url.port || (this.tls ? 443 : 80));
  }

  send(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<HttpResult> {
    if (this.closed) return Promise.resolve(NO_ANSWER);
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n${this.defaultHead}`;
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
    if (body !== undefined) head += `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
    head += '\r\n';
    return new Promise((resolve) => {
      const job: Pending = { head, body, noBody: method === 'HEAD', resolve };
      const conn = this.idle.pop();
      if (conn) conn.run(job);
      else if (this.open < this.maxSockets) this.connect().run(job);
      else this.waiting.push(job);
    });
  }

  close(): void {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.resolve(NO_ANSWER);
    for (const conn of this.idle.splice(0)) conn.destroy();
  }

  private connect(): Connection {
    this.open++;
    const socket = this.tls ? this.tlsSocket() : connect(this.port, this.host);
    socket.once('error', (err: Error) => (this.lastError = err.message));
    return new Connection(socket, this.timeoutMs, (conn, reusable) => this.released(conn, reusable));
  }

  private tlsSocket(): Socket {
    const socket = tlsConnect({ host: this.host, port: this.port, ...(isIP(this.host) ? {} : { servername: this.host }), ...(this.secureContext ? { secureContext: this.secureContext } : {}), ...(this.session ? { session: this.session } : {}) });
    socket.on('session', (session: Buffer) => (this.session = session));
    return socket;
  }

  /** A connection finished its request: give it the next one, keep it idle, or let it go. */
  private released(conn: Connection, reusable: boolean): void {
    if (!reusable) {
      this.open--;
      // An idle connection the server closed (its keep-alive timeout) leaves the idle list.
      const at = this.idle.indexOf(conn);
      if (at >= 0) this.idle.splice(at, 1);
      // A waiting request gets a new connection in place of the one that ended.
      const next = this.waiting.shift();
      if (next) this.connect().run(next);
      return;
    }
    const next = this.waiting.shift();
    if (next) conn.run(next);
    else if (this.closed) conn.destroy();
    else this.idle.push(conn);
  }
}

/** One socket and the one request in flight on it, with the parser for its answer. */
class Connection {
  private job: Pending | undefined;
  private buffered: Buffer | undefined;
  private ended = false;

  constructor(
    private readonly socket: Socket,
    timeoutMs: number,
    private readonly onDone: (conn: Connection, reusable: boolean) => void,
  ) {
    socket.setNoDelay(true);
    // One inactivity timer per socket (reset by every read and write), not one per request.
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
  }

  run(job: Pending): void {
    this.job = job;
    this.buffered = undefined;
    this.socket.write(job.body === undefined ? job.head : job.head + job.body);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (!this.job) {
      // Bytes nobody asked for: the connection's state is unknown, so it goes.
      this.socket.destroy();
      return;
    }
    this.buffered = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    const answer = parseAnswer(this.buffered, this.job.noBody, false);
    if (answer) this.finish(answer.result, answer.keepAlive);
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    const job = this.job;
    this.job = undefined;
    if (job) {
      // An answer without a length ends with the connection; anything else cut short is no answer.
      const answer = this.buffered ? parseAnswer(this.buffered, job.noBody, true) : undefined;
      job.resolve(answer?.result ?? NO_ANSWER);
    }
    this.onDone(this, false);
  }

  private finish(result: HttpResult, keepAlive: boolean): void {
    const job = this.job!;
    this.job = undefined;
    this.buffered = undefined;
    if (!keepAlive) {
      this.ended = true;
      this.socket.destroy();
    }
    job.resolve(result);
    this.onDone(this, keepAlive);
  }
}

/**
 * The answer in `buf` if it is complete, else undefined. `atEof`: the server closed the
 * connection, which completes an answer that has neither Content-Length nor chunked encoding.
 */
export function parseAnswer(buf: Buffer, noBody: boolean, atEof: boolean): { result: HttpResult; keepAlive: boolean } | undefined {
  const headEnd = buf.indexOf(HEADER_END);
  if (headEnd < 0) return undefined;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const status = Number(lines[0]!.split(' ', 3)[1]);
  if (!Number.isInteger(status) || status < 100) return { result: NO_ANSWER, keepAlive: false };
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const keepAlive = !/\bclose\b/i.test(headers.connection ?? '') && lines[0]!.startsWith('HTTP/1.1');
  const start = headEnd + HEADER_END.length;
  if (noBody || status === 204 || status === 304 || status < 200) return { result: { status, body: '', headers }, keepAlive };
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const body = dechunk(buf, start);
    if (body === null) return { result: NO_ANSWER, keepAlive: false };
    return body === undefined ? undefined : { result: { status, body, headers }, keepAlive };
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (buf.length - start < length) return undefined;
    return { result: { status, body: buf.toString('utf8', start, start + length), headers }, keepAlive };
  }
  // Neither: the body runs to the end of the connection.
  return atEof ? { result: { status, body: buf.toString('utf8', start), headers }, keepAlive: false } : undefined;
}

/** The decoded body of a chunked answer starting at `at`; undefined while incomplete, null if malformed. */
function dechunk(buf: Buffer, at: number): string | undefined | null {
  const parts: Buffer[] = [];
  let pos = at;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
    if (Number.isNaN(size) || size < 0) return null;
    const dataStart = lineEnd + 2;
    if (size === 0) {
      // The last chunk, then optional trailers, then an empty line.
      return buf.indexOf(HEADER_END, lineEnd) >= 0 ? Buffer.concat(parts).toString('utf8') : undefined;
    }
    if (buf.length < dataStart + size + 2) return undefined;
    parts.push(buf.subarray(dataStart, dataStart + size));
    pos = dataStart + size + 2;
  }
}
