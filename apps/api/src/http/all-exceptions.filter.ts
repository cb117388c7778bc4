import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Inject } from '@nestjs/common';
import { ThrottlerException } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '#libs/database';
import { LOGGER, type Logger } from '#libs/observability';
import { ApiError, CODE_FOR_STATUS, errorBody, type ErrorBody } from './api-error.js';

function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === 'object' && value !== null && 'error' in value && typeof (value as ErrorBody).error?.code === 'string';
}

function isHealthReport(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'status' in value && 'details' in value && 'info' in value;
}

function bodyErrorCode(status: number, message: string): string {
  if (status === 400 && message.includes('JSON')) return 'invalid_json';
  return CODE_FOR_STATUS[status] ?? 'error';
}

/** Every error leaves as the JSON error shape; an unexpected one is logged and never shows a stack. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const request = ctx.getRequest<FastifyRequest>();
    let status = 500;
    let body: ErrorBody;
    if (exception instanceof ThrottlerException) {
      status = 429;
      body = errorBody('rate_limited', 'too many requests from this client; retry after the Retry-After interval');
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const response = exception.getResponse();
      // Errors raised below the controllers (body parsing, content type, unknown route) concern the request as a whole.
      if (isHealthReport(response)) {
        // Terminus's readiness report is the answer itself: keep its shape for orchestrators.
        void reply.status(status).type('application/json; charset=utf-8').send(response);
        return;
      }
      body = isErrorBody(response)
        ? response
        : errorBody(bodyErrorCode(status, exception.message), exception.message, status === 404 ? [] : [{ path: '$', message: exception.message }]);
      if (exception instanceof ApiError) {
        for (const [name, value] of Object.entries(exception.headers)) void reply.header(name, value);
      }
    } else if (isDatabaseUnavailable(exception)) {
      status = 503;
      void reply.header('retry-after', '2');
      body = errorBody('database_unavailable', 'the database is not reachable; retry shortly');
      this.logger.warn({ requestId: request.id, err: exception instanceof Error ? exception.message : String(exception) }, 'database unavailable for a read');
    } else {
      this.logger.error({ requestId: request.id, err: exception instanceof Error ? { message: exception.message, stack: exception.stack } : String(exception) }, 'unhandled error');
      body = errorBody('internal', 'internal error; the request id identifies it in the logs');
    }
    // Explicitly JSON: a route's own content type (@Header on /metrics) may already be set, and
    // Fastify refuses to send an object as text/plain (a 500 in place of the error).
    void reply.status(status).type('application/json; charset=utf-8').send(body);
  }
}
