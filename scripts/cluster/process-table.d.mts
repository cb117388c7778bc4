export interface Expected {
  cmd?: string;
  arg?: string;
  startTime?: number;
  cwd?: string;
  stdout?: string;
}
export function tableFile(dataDir: string): string;
export function readTable(dataDir: string): Record<string, any> | undefined;
export function writeTable(dataDir: string, table: unknown): void;
export function removeTable(dataDir: string): void;
export function bootId(): string | undefined;
export function startTime(pid: number): number | undefined;
export function identity(pid: number | undefined): { pid: number | undefined; startTime?: number };
export function processAlive(pid: number | undefined, expect?: Expected): boolean;
export function readPidFile(file: string): number | undefined;
