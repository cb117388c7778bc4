export const COCKROACH_RELEASES_URL: string;
export function findCockroachBin(env?: Record<string, string | undefined>): { bin: string; problem?: undefined } | { bin?: undefined; problem: string };
export function cockroachVersion(bin: string): Promise<string>;
export function nodeArgs(options: {
  storeDir: string;
  logDir: string;
  ports: { rpc: number; sql: number; http: number };
  joinPorts: number[];
  cache?: string;
  maxSqlMemory?: string;
}): string[];
export function sqlUrl(port: number, database?: string): string;
export interface CockroachNodeHandle {
  name: string;
  url: string;
  httpUrl: string;
  logFile: string;
  logDir: string;
  readonly running: boolean;
  start(): void;
  stop(timeoutMs?: number): Promise<void>;
  kill9(): Promise<unknown>;
  select1(): Promise<boolean>;
}
export interface CockroachCluster {
  nodes: CockroachNodeHandle[];
  urls: string[];
  url: string;
  stop(): Promise<void>;
}
export function startCockroachCluster(options: {
  bin: string;
  dir: string;
  logsDir: string;
  nodes?: number;
  database?: string;
  log?: (message: string) => void;
  cache?: string;
  maxSqlMemory?: string;
  onSpawn?: (node: CockroachNodeHandle) => void;
}): Promise<CockroachCluster>;
