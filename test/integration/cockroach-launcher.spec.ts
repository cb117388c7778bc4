import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { COCKROACH_RELEASES_URL, findCockroachBin, nodeArgs, sqlUrl } from '../../scripts/lib/cockroach.mjs';
import { freePort } from '../../scripts/lib/stack.mjs';

/**
 * `npm start -- --db cockroach` and its three-node launcher (scripts/lib/cockroach.mjs), as far as
 * they can be checked on a machine without a CockroachDB binary: the refusal, the binary lookup
 * and the exact `cockroach start` arguments. Starting a real cluster is covered by the
 * CockroachDB suite (test/cockroach) where a binary exists.
 */
const run = promisify(execFile);
const made: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

async function startWithCockroach(env: Record<string, string | undefined>, extraArgs: string[] = []) {
  const dataDir = join(tempDir('mi-start-crdb-'), 'data');
  const result = await run(process.execPath, ['scripts/start.mjs', '--db', 'cockroach', '--data-dir', dataDir, ...extraArgs], { env: { ...process.env, COCKROACH_BIN: undefined, ...env }, timeout: 120_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
  return { ...result, dataDir };
}

function fakeBinary(script: string): { dir: string; bin: string } {
  const dir = tempDir('mi-fake-crdb-');
  const bin = join(dir, 'cockroach');
  writeFileSync(bin, `#!/bin/sh\n${script}\n`);
  chmodSync(bin, 0o755);
  return { dir, bin };
}

describe('npm start -- --db cockroach without a CockroachDB binary', () => {
  it('stops at once with exit code 2, says where to get one, and starts nothing (no PostgreSQL fallback)', async () => {
    const r = await startWithCockroach({ PATH: '/usr/bin:/bin' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--db cockroach: no cockroach binary');
    expect(r.stderr).toContain(COCKROACH_RELEASES_URL);
    expect(r.stderr).toContain('COCKROACH_BIN');
    expect(r.stderr).toContain('Nothing was started');
    expect(r.stderr).not.toMatch(/starting PostgreSQL|initdb/);
    expect(existsSync(r.dataDir)).toBe(false);
  });

  it('names COCKROACH_BIN when it points at nothing', async () => {
    const r = await startWithCockroach({ COCKROACH_BIN: '/nonexistent/cockroach' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('COCKROACH_BIN=/nonexistent/cockroach does not exist');
    expect(r.stderr).toContain(COCKROACH_RELEASES_URL);
  });

  it('stops with exit code 2 when the binary does not run, still without PostgreSQL', async () => {
    const { bin } = fakeBinary('echo "exec format error" >&2; exit 126');
    const r = await startWithCockroach({ COCKROACH_BIN: bin, REDIS_PORT: String(await freePort()) }, ['--port', String(await freePort())]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--db cockroach: ${bin} does not run`);
    expect(r.stderr).not.toMatch(/starting PostgreSQL|initdb/);
  });

  it('refuses an unknown backend', async () => {
    const r = await run(process.execPath, ['scripts/start.mjs', '--db', 'oracle'], { timeout: 30_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((r as { code: number }).code).toBe(2);
    expect((r as { stderr: string }).stderr).toContain('--db oracle: expected postgres or cockroach');
  });
});

describe('the CockroachDB launcher', () => {
  it('finds cockroach on PATH, and prefers COCKROACH_BIN', () => {
    const onPath = fakeBinary('exit 0');
    const explicit = fakeBinary('exit 0');
    expect(findCockroachBin({ PATH: `/usr/bin:${onPath.dir}` })).toEqual({ bin: onPath.bin });
    expect(findCockroachBin({ PATH: `/usr/bin:${onPath.dir}`, COCKROACH_BIN: explicit.bin })).toEqual({ bin: explicit.bin });
  });

  it('refuses a COCKROACH_BIN that is not executable, and an empty PATH, saying where to get a binary', () => {
    const dir = tempDir('mi-fake-crdb-');
    const notExecutable = join(dir, 'cockroach');
    writeFileSync(notExecutable, 'not a program');
    chmodSync(notExecutable, 0o644);
    expect(findCockroachBin({ PATH: '', COCKROACH_BIN: notExecutable }).problem).toMatch(/is not executable.*cockroachlabs\.com\/docs\/releases/);
    // A non-executable file on PATH does not count either.
    expect(findCockroachBin({ PATH: dir }).problem).toMatch(/^no cockroach binary/);
  });

  it('starts each node insecure on loopback, joined to all three, with its own store, logs and pid file', () => {
    const args = nodeArgs({ storeDir: '/d/node2', logDir: '/l/cockroach-2', ports: { rpc: 41002, sql: 42002, http: 43002 }, joinPorts: [41001, 41002, 41003] });
    expect(args).toEqual([
      'start',
      '--insecure',
      '--store=path=/d/node2',
      '--listen-addr=127.0.0.1:41002',
      '--sql-addr=127.0.0.1:42002',
      '--http-addr=127.0.0.1:43002',
      '--join=127.0.0.1:41001,127.0.0.1:41002,127.0.0.1:41003',
      '--cache=128MiB',
      '--max-sql-memory=128MiB',
      '--log-dir=/l/cockroach-2',
      '--pid-file=/d/node2/cockroach.pid',
    ]);
    expect(sqlUrl(42002)).toBe('postgresql://root@127.0.0.1:42002/meter_intake?sslmode=disable');
  });
});
