import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { generateApiKey } from '#libs/database';
import { registerClient } from './auth.js';
// The same launcher `npm start` uses, so tests run against the setup users get.
import { freePort, startStack } from '../../scripts/lib/stack.mjs';

const run = promisify(execFile);

export interface StackInfo {
  dir: string;
  databaseUrl: string;
  replicaUrl: string;
  redisUrl: string;
  pgPort: number;
  replicaPort: number;
  redisPort: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** Real PostgreSQL (primary + streaming replica) and Redis on free ports in a temp folder, migrated once. */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'meter-intake-test-'));
  const ports = { pgPort: await freePort(), replicaPort: await freePort(), redisPort: await freePort() };
  const stack = await startStack({ dir, ...ports });
  await run(process.execPath, ['dist/libs/database/src/migrate.main.js'], {
    env: { ...process.env, DATABASE_URL: stack.databaseUrl, LOG_LEVEL: 'warn' },
  });
  const info: StackInfo = { dir, databaseUrl: stack.databaseUrl, replicaUrl: stack.replicaUrl!, redisUrl: stack.redisUrl, ...ports };
  project.provide('stack', info);
  // One client key for the whole suite, with every scope, registered the way operators do it.
  // Clusters the tests start register the same key in their own database (test/support/cluster.ts).
  const apiKey = generateApiKey();
  registerClient(apiKey, { databaseUrl: stack.databaseUrl, name: 'tests', scopes: 'submit,read:all,admin' });
  project.provide('apiKey', apiKey);
  return async () => {
    await stack.stop();
    if (!process.env.KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
  };
}
