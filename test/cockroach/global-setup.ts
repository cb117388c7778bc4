import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
// The same launchers `npm start -- --db cockroach` uses.
import { type CockroachCluster, findCockroachBin, startCockroachCluster } from '../../scripts/lib/cockroach.mjs';
import { freePort, RedisInstance } from '../../scripts/lib/stack.mjs';
import { generateApiKey } from '#libs/database';
import { registerClient } from '../support/auth.js';

const run = promisify(execFile);

/** What the CockroachDB suite gets: a cluster to test against, or the plain reason it cannot run. */
export type CockroachSuite =
  | { available: true; source: 'COCKROACH_URL' | 'binary'; url: string; urls: string[]; redisUrl: string; dir: string }
  | { available: false; reason: string };

declare module 'vitest' {
  export interface ProvidedContext {
    cockroach: CockroachSuite;
  }
}

export const NOT_RUN = 'CockroachDB suite: NOT RUN (no COCKROACH_URL or cockroach binary)';

/**
 * The CockroachDB end-to-end suite runs whenever it can: against COCKROACH_URL when set (an
 * existing cluster; the suite creates and migrates the database named in the URL), otherwise
 * against a local three-node cluster started from a `cockroach` binary (COCKROACH_BIN or PATH).
 * With neither, it says plainly that it did not run; its tests are reported as skipped, never
 * as passed (scripts/test.mjs prints the same line under its totals).
 */
export default async function setup(project: TestProject) {
  const found = findCockroachBin();
  if (!process.env.COCKROACH_URL && found.problem) {
    console.log(`\n${NOT_RUN}\n  ${found.problem}\n`);
    project.provide('cockroach', { available: false, reason: found.problem });
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'meter-intake-crdb-test-'));
  const logsDir = join(dir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  const redis = new RedisInstance(join(dir, 'redis'), await freePort(), join(logsDir, 'redis.log'));
  mkdirSync(join(dir, 'redis'), { recursive: true });
  await redis.start();
  let cluster: CockroachCluster | undefined;
  let urls: string[];
  if (process.env.COCKROACH_URL) {
    urls = [process.env.COCKROACH_URL];
  } else {
    cluster = await startCockroachCluster({ bin: found.bin!, dir: join(dir, 'cockroach'), logsDir: join(logsDir, 'cockroach'), log: (m) => console.log(`[cockroach] ${m}`) });
    urls = cluster.urls;
  }
  const url = urls[0]!;
  await run(process.execPath, ['dist/libs/database/src/migrate.main.js'], {
    env: { ...process.env, DB_BACKEND: 'cockroach', COCKROACH_URL: url, DATABASE_URL: '', DATABASE_REPLICA_URL: '', LOG_LEVEL: 'warn' },
  });
  // The suite's client key, as on PostgreSQL (test/support/global-setup.ts): keys exist on both backends.
  const apiKey = generateApiKey();
  registerClient(apiKey, { databaseUrl: url, backend: 'cockroach', name: `tests-${Date.now()}`, scopes: 'submit,read:all,admin' });
  project.provide('apiKey', apiKey);
  console.log(`\nCockroachDB suite: running against ${process.env.COCKROACH_URL ? 'COCKROACH_URL' : `a local three-node cluster (${found.bin})`}\n`);
  project.provide('cockroach', { available: true, source: process.env.COCKROACH_URL ? 'COCKROACH_URL' : 'binary', url, urls, redisUrl: redis.url, dir });
  return async () => {
    await redis.stop();
    await cluster?.stop();
    if (!process.env.KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
  };
}
