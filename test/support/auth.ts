import { spawnSync } from 'node:child_process';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The suite's client key: a client with every scope in each database the suite starts (registerTestClient). */
    apiKey: string;
  }
}

export function testKey(): string {
  return inject('apiKey');
}

/** The suite's credential, as every test request sends it unless it sets Authorization itself. */
export function authHeaders(key = testKey()): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

/**
 * Registers `key` as a client in the database at `databaseUrl`, with the built key manager
 * (`npm run clients -- create --key-stdin`, the command operators use), so the tests go through
 * the same door. Returns the client's id.
 */
export function registerClient(
  key: string,
  opts: { databaseUrl: string; name: string; scopes: string; rateLimit?: number; backend?: 'postgres' | 'cockroach' },
): string {
  const env: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: 'warn', DB_BACKEND: opts.backend ?? 'postgres' };
  if (opts.backend === 'cockroach') Object.assign(env, { COCKROACH_URL: opts.databaseUrl, DATABASE_URL: '' });
  else env.DATABASE_URL = opts.databaseUrl;
  const args = ['dist/apps/clients/src/main.js', 'create', '--name', opts.name, '--scopes', opts.scopes, '--key-stdin', '--json'];
  if (opts.rateLimit !== undefined) args.push('--rate-limit', String(opts.rateLimit));
  const r = spawnSync(process.execPath, args, { input: key, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`clients create ${opts.name} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

/** Revokes a client by name with the built key manager (`npm run clients -- revoke`). */
export function revokeClient(name: string, databaseUrl: string): void {
  const r = spawnSync(process.execPath, ['dist/apps/clients/src/main.js', 'revoke', '--name', name], { env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`clients revoke ${name} failed (${r.status}): ${r.stderr}${r.stdout}`);
}
