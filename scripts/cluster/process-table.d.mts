export function tableFile(dataDir: string): string;
export function readTable(dataDir: string): Record<string, any> | undefined;
export function writeTable(dataDir: string, table: unknown): void;
export function removeTable(dataDir: string): void;
export function processAlive(pid: number | undefined, token: string): boolean;
export function readPidFile(file: string): number | undefined;
