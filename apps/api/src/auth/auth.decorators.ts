import { type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import type { ApiClient, ClientScope } from '#libs/database';

const PUBLIC = 'meter-intake:public';
const SCOPES = 'meter-intake:scopes';

/** No credential needed: health (and metrics, which nginx does not pass on). Everything else needs a key. */
export const Public = () => SetMetadata(PUBLIC, true);

/** The scopes that may call this route; any one of them is enough. */
export const RequireScopes = (...scopes: ClientScope[]) => SetMetadata(SCOPES, scopes);

export function isPublic(reflector: Reflector, context: ExecutionContext): boolean {
  return reflector.getAllAndOverride<boolean | undefined>(PUBLIC, [context.getHandler(), context.getClass()]) === true;
}

export function requiredScopes(reflector: Reflector, context: ExecutionContext): ClientScope[] | undefined {
  return reflector.getAllAndOverride<ClientScope[] | undefined>(SCOPES, [context.getHandler(), context.getClass()]);
}

/** The authenticated client of a request, set by ApiKeyGuard. */
export function clientOf(req: object): ApiClient {
  const client = maybeClientOf(req);
  if (!client) throw new Error('no authenticated client on this request: is the route missing from ApiKeyGuard?');
  return client;
}

/** The client, if ApiKeyGuard set one (it does not on @Public() routes). */
export function maybeClientOf(req: object): ApiClient | undefined {
  return (req as { meterClient?: ApiClient }).meterClient;
}

export function setClient(req: object, client: ApiClient): void {
  (req as { meterClient?: ApiClient }).meterClient = client;
}

/** The client's own readings only, or every reading (operators). */
export function seesAll(client: ApiClient): boolean {
  return client.scopes.includes('read:all');
}
