import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { API_KEY_PATTERN, hashApiKey } from '#libs/database';
import type { ApiMetrics } from '#libs/observability';
import { API_METRICS } from '../api.tokens.js';
import { ApiError } from '../http/api-error.js';
import { ApiKeyCache, KeyLookupUnavailableError } from './api-key.cache.js';
import { isPublic, requiredScopes, setClient } from './auth.decorators.js';
import { AuthFailures } from './auth-failures.js';

const REALM = 'Bearer realm="meter-intake"';
const HEADER = 'Authorization';

function unauthenticated(message: string, invalidToken: boolean): ApiError {
  return new ApiError(401, 'unauthenticated', message, [{ path: HEADER, message }], {
    'www-authenticate': invalidToken ? `${REALM}, error="invalid_token"` : REALM,
  });
}

/**
 * Every route needs a client key unless it is @Public(): `Authorization: Bearer <key>`. The
 * order of the checks is the order of their cost: the shape of the header (nothing looked up),
 * the address's recent failures (a key guesser is slowed before any lookup), then the key
 * (cached, ApiKeyCache), then the route's scopes. Every refusal counts as a failure of the
 * address (AuthFailures), a missing scope excepted: that key is valid. X-API-Key is not accepted: before issue 13
 * it took any string, so keeping it as an alias would keep that ambiguity alive.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyCache,
    private readonly failures: AuthFailures,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(API_METRICS) private readonly metrics: ApiMetrics,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (isPublic(this.reflector, context)) return true;
    const req = context.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined>; ip: string }>();
    const client = await this.authenticate(req.headers, req.ip);
    const scopes = requiredScopes(this.reflector, context);
    if (scopes && !scopes.some((s) => client.scopes.includes(s))) {
      this.metrics.authFailures.inc({ reason: 'scope' });
      throw new ApiError(403, 'forbidden', `this key lacks the scope this request needs: ${scopes.join(' or ')}`, [{ path: HEADER, message: `needs scope ${scopes.join(' or ')}` }]);
    }
    setClient(req, client);
    return true;
  }

  private async authenticate(headers: Record<string, string | string[] | undefined>, address: string) {
    const fail = (reason: string, error: ApiError): never => {
      this.failures.record(address);
      this.metrics.authFailures.inc({ reason });
      throw error;
    };
    const header = headers.authorization;
    if (header === undefined) {
      if (headers['x-api-key'] !== undefined) fail('wrong_header', unauthenticated('send the key as Authorization: Bearer <key>; X-API-Key is not accepted', false));
      return fail('missing', unauthenticated('a client key is required: Authorization: Bearer <key>', false));
    }
    if (Array.isArray(header) || header.length > this.config.auth.maxHeaderLength) return fail('malformed', unauthenticated('the Authorization header must be one "Bearer <key>"', true));
    const match = /^Bearer +(\S+)$/i.exec(header);
    if (!match) return fail('malformed', unauthenticated('the Authorization header must be "Bearer <key>"', true));
    const key = match[1]!;
    if (!API_KEY_PATTERN.test(key)) return fail('malformed', unauthenticated('not a meter-intake key', true));
    const hash = hashApiKey(key);
    // An address with too many recent failures gets no lookups: a key guesser is slowed before
    // any reaches the database. Keys this replica already trusts still pass, so the other
    // clients behind the same address (a gateway, a NAT) are not shut out with the guesser.
    const retryAfter = this.failures.blockedFor(address);
    if (retryAfter > 0 && !this.keys.trusted(hash)) {
      this.metrics.authFailures.inc({ reason: 'blocked' });
      throw new ApiError(429, 'too_many_auth_failures', 'too many requests with an invalid key from this address; retry after the Retry-After interval', [], {
        'retry-after': String(retryAfter),
      });
    }
    let client;
    try {
      client = await this.keys.resolve(hash);
    } catch (err) {
      if (!(err instanceof KeyLookupUnavailableError)) throw err;
      this.metrics.authFailures.inc({ reason: 'lookup_unavailable' });
      throw new ApiError(503, 'auth_unavailable', 'the key cannot be checked right now (the database is unreachable); retry shortly', [], { 'retry-after': '2' });
    }
    if (!client) return fail('unknown_or_revoked', unauthenticated('the key is not valid (never issued, or revoked)', true));
    return client;
  }
}
