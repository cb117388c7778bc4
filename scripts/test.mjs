// `npm test`: prepares the machine (npm dependencies, build, redis-server, PostgreSQL and nginx
// from apt when missing), runs every test tier with Vitest against real servers started by the
// harness, and ends with a plain `N passed, N failed` line.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, root } from './lib/setup.mjs';

ensureDependencies();
ensureSystemPackages(['redis-server', 'postgres', 'nginx']);
ensureBuilt();

const results = join(root, '.tmp', 'vitest-results.json');
rmSync(results, { force: true });
const vitest = spawnSync(join(root, 'node_modules', '.bin', 'vitest'), ['run', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env: { ...process.env, FORCE_COLOR: process.env.CI ? '0' : process.env.FORCE_COLOR } });

let passed = 0;
let failed = 0;
let skipped = 0;
let cockroachLine;
if (existsSync(results)) {
  const report = JSON.parse(readFileSync(results, 'utf8'));
  passed = report.numPassedTests ?? 0;
  failed = report.numFailedTests ?? 0;
  skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A file that failed to load has no failed test but is a failure all the same.
  const brokenFiles = (report.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).length === 0).length;
  failed += brokenFiles;
  cockroachLine = cockroachSuiteLine(report);
}
const code = vitest.status ?? 1;
if (code !== 0 && failed === 0) failed = 1; // vitest failed outside any test (setup, config): never report it as green
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (cockroachLine) console.log(cockroachLine);
if (passed === 0 && code === 0) {
  console.error('no test ran');
  process.exit(1);
}
process.exit(code);

/**
 * The CockroachDB suite (test/cockroach) runs only where COCKROACH_URL or a cockroach binary is
 * available. Its tests are then counted like any other; without one they are skipped, and this
 * line says so plainly, so a green total is never read as "CockroachDB tested".
 */
function cockroachSuiteLine(report) {
  const files = (report.testResults ?? []).filter((f) => String(f.name).includes('/test/cockroach/'));
  if (files.length === 0) return undefined;
  const tests = files.flatMap((f) => f.assertionResults ?? []);
  const ran = tests.filter((t) => t.status === 'passed' || t.status === 'failed');
  if (ran.length === 0) return 'CockroachDB suite: NOT RUN (no COCKROACH_URL or cockroach binary)';
  const ok = ran.filter((t) => t.status === 'passed').length;
  return `CockroachDB suite: ran, ${ok} passed, ${ran.length - ok} failed${tests.length > ran.length ? `, ${tests.length - ran.length} skipped` : ''}`;
}
