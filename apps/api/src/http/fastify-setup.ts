import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '#libs/config';
import type { ApiMetrics, Logger } from '#libs/observability';
import { EventLoopMonitor } from '../intake/event-loop.monitor.js';
import { ApiError, errorBody } from './api-error.js';
import { queuedForMs } from './queue-time.js';

/**
 * More headers than any client of this API sends (a browser sends about 20). nginx limits their
 * bytes, not their number, so 1,000 tiny headers would pass it; the replica refuses them here.
 */
export const MAX_REQUEST_HEADERS = 100;

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** Keeps the caller's X-Request-Id (from nginx or the client) when sane, so one reading can be traced end to end. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && REQUEST_ID.test(value) ? value : randomUUID();
}

export function fastifyOptions(config: AppConfig) {
  return {
    bodyLimit: config.http.bodyLimitBytes,
    trustProxy: config.http.trustProxy,
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => requestIdFrom(req.headers['x-request-id']),
    requestIdHeader: false as const,
    onProtoPoisoning: 'error' as const,
    onConstructorPoisoning: 'error' as const,
    return503OnClosing: true,
    logger: false,
    keepAliveTimeout: 65_000,
    clientErrorHandler,
  };
}

/**
 * A request Node's HTTP parser refuses before Fastify sees it (a control character in a header
 * such as Authorization, a malformed request line): the API's JSON 400 instead of Node's bare
 * one, naming what was wrong, then the connection closes.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const inHeaders = /HEADER/.test(err.code ?? '');
  const body = JSON.stringify(
    errorBody('bad_request', inHeaders ? 'malformed request headers' : 'malformed request', [
      { path: inHeaders ? 'headers' : 'request', message: inHeaders ? 'a header has a character HTTP does not allow (control characters included)' : 'not a valid HTTP request' },
    ]),
  );
  socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * Fastify-level behaviour that sits below NestJS: JSON is the only body type (anything else is
 * 415 before a handler runs; parse errors reach AllExceptionsFilter as HttpExceptions), and
 * every response is counted, timed and logged with its request id.
 */
export function configureFastify(app: FastifyInstance, config: AppConfig, metrics: ApiMetrics, logger: Logger): void {
  const loop = new EventLoopMonitor(config.intake.shedEventLoopDelayMs);
  app.addHook('onClose', (_instance, done) => {
    loop.stop();
    done();
  });

  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.http.bodyLimitBytes }, (request, body: Buffer, done) => {
    // Bodies are never decompressed (so a gzip bomb cannot expand here): say so instead of
    // failing to parse the compressed bytes as JSON.
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      done(new ApiError(415, 'unsupported_media_type', 'request bodies are not decompressed; send plain JSON', [{ path: 'Content-Encoding', message: `${String(encoding).slice(0, 40)} is not supported` }]), undefined);
      return;
    }
    // Decoding would replace invalid bytes with U+FFFD and validate something the client did not send.
    if (!isUtf8(body)) {
      done(new ApiError(400, 'invalid_utf8', 'the body is not valid UTF-8', [{ path: '$', message: 'contains bytes that are not UTF-8' }]), undefined);
      return;
    }
    void parseJson(request, body.toString('utf8'), done);
  });

  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    if (config.http.replicaName) void reply.header('x-served-by', config.http.replicaName);
    if (request.raw.rawHeaders.length > 2 * MAX_REQUEST_HEADERS) {
      void reply.status(431).send(errorBody('headers_too_large', `a request carries at most ${MAX_REQUEST_HEADERS} headers`, [{ path: 'headers', message: `${request.raw.rawHeaders.length / 2} headers` }]));
      return;
    }
    // Waited too long in this replica before its turn came (a spike queues here): refused before
    // its body is read, in microseconds, so the queue drains instead of growing. A load the
    // replica keeps up with waits far less; near saturation a small tail is refused too.
    const shedAfterMs = config.intake.shedQueueTimeMs;
    if (shedAfterMs > 0 && request.url.startsWith('/v1/')) {
      const waited = queuedForMs(request.headers['x-request-start'], Date.now());
      if (waited !== undefined && waited > shedAfterMs) {
        metrics.shed.inc({ reason: 'queue_time' });
        void reply.status(503).header('retry-after', '1').send(errorBody('overloaded', `this replica is behind: the request waited ${Math.round(waited)} ms for its turn; retry shortly`));
        return;
      }
    }
    // Saturated: refuse new readings before their bodies are read, cheaply and visibly.
    if (request.method === 'POST' && loop.overloaded) {
      metrics.shed.inc({ reason: 'event_loop' });
      void reply
        .status(503)
        .header('retry-after', '1')
        .send(errorBody('overloaded', `this replica is saturated (event-loop delay ${Math.round(loop.lastDelayMs)} ms); retry shortly`));
      return;
    }
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { route, method: request.method, status: String(reply.statusCode) };
    const seconds = reply.elapsedTime / 1000;
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, seconds);
    if (config.log.requests) {
      logger.info({ requestId: request.id, method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, client: request.ip }, 'request');
    }
    done();
  });
}
