import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';

/** The client is its API key when it sends one, else the address nginx forwarded. */
@Injectable()
export class ClientThrottlerGuard extends ThrottlerGuard {
  protected override getTracker(req: Record<string, unknown>): Promise<string> {
    const headers = req.headers as Record<string, string | string[] | undefined>;
    const apiKey = headers['x-api-key'];
    if (typeof apiKey === 'string' && apiKey.length > 0) {
      return Promise.resolve(`key:${createHash('sha256').update(apiKey).digest('base64url').slice(0, 16)}`);
    }
    return Promise.resolve(`ip:${String(req.ip)}`);
  }
}
