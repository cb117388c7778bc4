export interface NginxSettings {
  maxBody: string;
  clientTimeout: string;
  clientKeepalive: string;
  ratePerSecond: number;
  rateBurst: number;
  workerProcesses: string;
  upstreamMaxConns: number;
  accessLog: boolean;
  servedBy: boolean;
}
export interface Upstream {
  name: string;
  port: number;
}
export function nginxSettings(env?: Record<string, string | undefined>): NginxSettings;
export function renderNginxConfig(options: { prefix: string; listen: number; upstreams: Upstream[]; settings: NginxSettings }): { main: string; shared: Record<string, string> };
export class NginxProcess {
  constructor(prefix: string, listen: number, settings: NginxSettings);
  prefix: string;
  listen: number;
  confFile: string;
  logFile: string;
  start(upstreams: Upstream[]): Promise<void>;
  setUpstreams(upstreams: Upstream[]): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
}
export function nginxAvailable(): boolean;
