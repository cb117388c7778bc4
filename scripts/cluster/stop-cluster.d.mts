import type { Expected } from './process-table.mjs';
export const STOP_DEADLINES_MS: Readonly<{ nginx: number; api: number; writer: number; redis: number; cockroach: number; postgresFast: number; postgresImmediate: number; kill: number; postgresSettle: number; watchdogRound: number }>;
export const STOP_DEADLINE_MS: number;
export interface ClusterProcess {
  name: string;
  kind: 'nginx' | 'api' | 'writer' | 'redis' | 'cockroach' | 'postgres';
  pid: number;
  expect: Expected;
  dataDir?: string;
}
export function clusterProcesses(dataDir: string): ClusterProcess[];
export function stopCluster(dataDir: string, log?: (message: string) => void): Promise<ClusterProcess[]>;
export function liveSupervisor(dataDir: string): Record<string, any> | undefined;
export function clearLeftovers(dataDir: string, log: (message: string) => void): Promise<{ running?: Record<string, any>; stopped?: ClusterProcess[] }>;
