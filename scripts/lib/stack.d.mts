export function findPgBin(name: string): string;
export function findBin(name: string, hint: string): string;
/** A free port this process has not been given before. */
export function freePort(): Promise<number>;
/** Ports chosen some other way, which freePort must not return. */
export function markPortsTaken(ports: Iterable<number>): void;
export const DEFAULT_APPENDFSYNC: 'always';
export function appendfsyncFromEnv(): string;
export const DEFAULT_MAXMEMORY: string;
export function maxmemoryFromEnv(): string;
/** Resolves with the first truthy value fn returns. */
export function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs?: number, intervalMs?: number): Promise<NonNullable<T>>;
export class PgInstance {
  constructor(name: string, dataDir: string, port: number, socketDir: string, logFile: string);
  upstreamPort?: number;
  name: string;
  dataDir: string;
  port: number;
  readonly url: string;
  start(upstreamPort?: number): Promise<void>;
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  psql(sql: string, db?: string): Promise<string>;
  isRunning(): Promise<boolean>;
}
export class RedisInstance {
  constructor(dir: string, port: number, logFile: string, appendfsync?: string, maxmemory?: string);
  port: number;
  maxmemory: string;
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill9(): Promise<unknown>;
  readonly running: boolean;
  cli(...args: string[]): Promise<string>;
}
export interface Stack {
  primary: PgInstance;
  replica?: PgInstance;
  redis: RedisInstance;
  databaseUrl: string;
  replicaUrl?: string;
  redisUrl: string;
  stop(): Promise<void>;
}
export function startStack(options: {
  dir: string;
  pgPort: number;
  replicaPort: number;
  redisPort: number;
  withReplica?: boolean;
  appendfsync?: 'always' | 'everysec' | 'no';
  log?: (message: string) => void;
}): Promise<Stack>;
export function writeJson(file: string, value: unknown): void;
