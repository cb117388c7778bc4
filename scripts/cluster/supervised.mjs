// A supervised child process: its output goes to a log file; when it dies unexpectedly it is
// restarted with exponential backoff and the restart is logged.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { root } from '../lib/setup.mjs';
import { waitFor } from '../lib/stack.mjs';

export class Supervised {
  /**
   * `onMessage`: the child gets an IPC channel, and what it sends arrives here (an API replica
   * told to stop by someone else asks to be taken out of nginx first).
   */
  constructor({ name, entry, env, healthUrl, logFile, log, onSpawn, onMessage }) {
    Object.assign(this, { name, entry, env, healthUrl, logFile, log, onSpawn, onMessage, restarts: 0, stopping: false });
  }

  start() {
    // The child writes its log file itself, not through a pipe to the supervisor: if the
    // supervisor dies, a pipe would break under the child (EPIPE on its next log line) just when
    // it must drain and flush, and its last lines would be lost.
    const out = openSync(this.logFile, 'a');
    // MI_CPU_PROF_DIR: a V8 CPU profile of every replica and writer, written when it exits (for
    // bench/experiments/per-job-cost.mjs; NODE_OPTIONS may not carry --cpu-prof).
    const profile = process.env.MI_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MI_CPU_PROF_DIR}`] : [];
    // detached: a terminal Ctrl-C reaches only the supervisor, which stops the parts in order.
    const stdio = this.onMessage ? ['ignore', out, out, 'ipc'] : ['ignore', out, out];
    this.child = spawn(process.execPath, [...profile, this.entry], { cwd: root, env: this.env, stdio, detached: true });
    closeSync(out);
    if (this.onMessage) {
      const child = this.child;
      child.on('message', (message) => this.onMessage(this, child, message));
      // A child that exits mid-send must not take the supervisor with it.
      child.on('error', (err) => this.log(`${this.name}: ${err.message}`));
    }
    this.startedAt = Date.now();
    this.onSpawn?.(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        resolve(code ?? signal);
        if (this.stopping) return;
        // A process that ran for a minute is healthy again: the backoff starts from scratch.
        if (Date.now() - this.startedAt > 60_000) this.restarts = 0;
        const delay = Math.min(500 * 2 ** this.restarts, 30_000);
        this.restarts++;
        this.log(`${this.name} exited (${signal ?? `code ${code}`}); restarting in ${delay} ms (restart #${this.restarts}; log: ${this.logFile})`);
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          if (this.stopping) return;
          this.start();
        }, delay);
      });
    });
  }

  get pid() {
    return this.child?.pid;
  }

  get running() {
    return Boolean(this.child) && this.child.exitCode === null && this.child.signalCode === null;
  }

  async health(timeoutMs = 1_000) {
    try {
      const res = await fetch(this.healthUrl, { signal: AbortSignal.timeout(timeoutMs) });
      return res.status === 200 ? 'ready' : `not ready (${res.status})`;
    } catch {
      return this.running ? 'not answering' : 'down';
    }
  }

  async waitReady(timeoutMs = 60_000) {
    await waitFor(`${this.name} to be ready`, async () => {
      if (!this.running && !this.restartTimer) throw Object.assign(new Error(`${this.name} exited; see ${this.logFile}`), { fatal: true });
      return (await this.health()) === 'ready';
    }, timeoutMs, 100);
  }

  /** From now on an exit is final: no restart (the cluster is stopping). */
  noMoreRestarts() {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
  }

  /** Answers the child over its IPC channel, if it is still there. */
  tell(child, message) {
    if (child.connected) child.send(message, (err) => err && this.log(`${this.name}: could not answer over IPC: ${err.message}`));
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`. The apps drain on SIGTERM. */
  async stop(timeoutMs) {
    this.noMoreRestarts();
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.log(`${this.name} did not stop within ${timeoutMs} ms; killing it`);
      this.child.kill('SIGKILL');
    }, timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
