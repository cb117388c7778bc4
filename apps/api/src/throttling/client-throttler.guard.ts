import { type ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import { maybeClientOf } from '../auth/auth.decorators.js';
import { ApiError } from '../http/api-error.js';

/** The limit of the request's client: its own (api_clients.rate_limit) or the service's RATE_LIMIT. */
export function clientLimit(defaultLimit: number) {
  return (context: ExecutionContext): number => maybeClientOf(context.switchToHttp().getRequest<object>())?.rateLimit ?? defaultLimit;
}

/**
 * The client is the authenticated one (ApiKeyGuard runs first): a new header value buys
 * nothing, since only issued keys get this far. Public routes (health, metrics) skip
 * throttling; one that did not would be counted by address.
 */
@Injectable()
export class ClientThrottlerGuard extends ThrottlerGuard {
  /**
   * Without Redis the counters are unreachable. Writes fail with 503 anyway (the queue is in
   * the same Redis); reads stay available, unthrottled, since they only need the database.
   */
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    try {
      return await super.canActivate(context);
    } catch (err) {
      const method = context.switchToHttp().getRequest<{ method: string }>().method;
      if (err instanceof ApiError && err.getStatus() === 503 && (method === 'GET' || method === 'HEAD')) return true;
      throw err;
    }
  }

  protected override getTracker(req: Record<string, unknown>): Promise<string> {
    const client = maybeClientOf(req);
    return Promise.resolve(client ? `client:${client.id}` : `ip:${String(req.ip)}`);
  }
}
