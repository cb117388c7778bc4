import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../scripts/lib/stack.mjs';

export interface AppProcess {
  child: ChildProcess;
  port: number;
  url: string;
  logFile: string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string | null>;
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
}

function launch(entry: string, env: Record<string, string>, logDir: string, name: string, port: number, url: string): AppProcess {
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  // 'close', not 'exit': only then has all of the child's output been read, and the log file
  // is complete once `out` has flushed. Tests read the log right after the process ends.
  const exited = new Promise<number | string | null>((resolve) => child.once('close', (code, signal) => out.end(() => resolve(code ?? signal))));
  return {
    child,
    port,
    url,
    logFile,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

async function waitHttp(url: string, what: string, proc: AppProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // An exited process fails at once rather than after the whole timeout.
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${what} exited with ${proc.child.exitCode ?? proc.child.signalCode}; see ${proc.logFile}`);
    const res = await fetch(url).catch(() => undefined);
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; see ${proc.logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts an API replica from the build (dist/) and waits until /health/ready answers 200. */
export async function startApi(env: Record<string, string>, logDir: string, name = 'api', waitPath = '/health/ready'): Promise<AppProcess> {
  const port = await freePort();
  const proc = launch('dist/apps/api/src/main.js', { PORT: String(port), REPLICA_NAME: name, LOG_REQUESTS: 'false', ...env }, logDir, name, port, `http://127.0.0.1:${port}`);
  await waitHttp(`${proc.url}${waitPath}`, name, proc);
  return proc;
}

/** Starts a writer from the build and waits for its health port to say ready. */
export async function startWriter(env: Record<string, string>, logDir: string, name = 'writer'): Promise<AppProcess> {
  const port = await freePort();
  const proc = launch('dist/apps/writer/src/main.js', { WRITER_HEALTH_PORT: String(port), ...env }, logDir, name, port, `http://127.0.0.1:${port}`);
  await waitHttp(`${proc.url}/health/ready`, name, proc);
  return proc;
}

/**
 * The API replicas and writers one test file starts, on shared settings, so the file can stop
 * them all (or those started so far) by their pids.
 */
export class ProcessGroup {
  readonly started: AppProcess[] = [];

  constructor(
    private readonly baseEnv: Record<string, string>,
    private readonly logDir: string,
  ) {}

  async api(env: Record<string, string>, name: string, waitPath?: string): Promise<AppProcess> {
    const p = await startApi({ ...this.baseEnv, ...env }, this.logDir, name, waitPath);
    this.started.push(p);
    return p;
  }

  async writer(env: Record<string, string>, name: string): Promise<AppProcess> {
    const p = await startWriter({ ...this.baseEnv, ...env }, this.logDir, name);
    this.started.push(p);
    return p;
  }

  /** Stops every process started so far (SIGCONT first: a paused process cannot exit). */
  async stopAll(): Promise<void> {
    const all = this.started.splice(0);
    for (const p of all) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGCONT');
    await Promise.all(all.map((p) => p.stop()));
  }
}
