import { createHash } from 'node:crypto';
import { type ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import { ApiError } from '../http/api-error.js';

/** The client is its API key when it sends one, else the address nginx forwarded. */
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
    const headers = req.headers as Record<string, string | string[] | undefined>;
    const apiKey = headers['x-api-key'];
    if (typeof apiKey === 'string' && apiKey.length > 0) {
      return Promise.resolve(`key:${createHash('sha256').update(apiKey).digest('base64url').slice(0, 16)}`);
    }
    return Promise.resolve(`ip:${String(req.ip)}`);
  }
}
