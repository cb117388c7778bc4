export function controlCall(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
export function control<T = any>(socketPath: string, method: string, path: string, body?: unknown): Promise<T>;
