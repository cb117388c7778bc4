// `npm test`: prepares the machine (npm dependencies, build, redis-server, PostgreSQL and nginx
// from apt when missing), runs every test tier with Vitest against real servers started by the
// harness, and ends with a plain `N passed, N failed` line.
// `npm run test:compose` is the same runner with `--project compose`: the compose tier
// (test/compose) brings its own Docker engine and images and needs none of the above.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureCertificate } from './cluster/tls.mjs';
import { ensureBuilt, ensureDependencies, ensureSystemPackages, root } from './lib/setup.mjs';

const args = process.argv.slice(2);
const projects = args.flatMap((a, i) => (a === '--project' ? [args[i + 1]] : a.startsWith('--project=') ? [a.slice('--project='.length)] : []));
const composeOnly = projects.length > 0 && projects.every((p) => p === 'compose');

ensureDependencies();
if (!composeOnly) {
  ensureSystemPackages(['redis-server', 'postgres', 'nginx', 'openssl']);
  ensureBuilt();
}

const results = join(root, '.tmp', 'vitest-results.json');
rmSync(results, { force: true });
const env = { ...process.env, FORCE_COLOR: process.env.CI ? '0' : process.env.FORCE_COLOR };
if (projects.includes('compose')) env.MI_TEST_COMPOSE = '1';
if (!composeOnly) {
  // Every cluster the tests start serves HTTPS (the default) with one certificate (made once,
  // reused by later runs until a month before it expires), which the test processes trust: NODE_EXTRA_CA_CERTS is read when a process starts, so it
  // is set here, before Vitest and its workers exist. Any CA already trusted that way stays.
  const tlsDir = join(root, '.tmp', 'test-tls');
  const { cert, key } = ensureCertificate(tlsDir, {});
  const bundle = join(tlsDir, 'trust.pem');
  const previous = process.env.NODE_EXTRA_CA_CERTS;
  const extra = previous && previous !== bundle && existsSync(previous) ? readFileSync(previous, 'utf8') : '';
  mkdirSync(tlsDir, { recursive: true });
  writeFileSync(bundle, `${extra.trimEnd()}\n${readFileSync(cert, 'utf8')}`);
  Object.assign(env, { NODE_EXTRA_CA_CERTS: bundle, MI_TEST_TLS_CERT: cert, MI_TEST_TLS_KEY: key });
}
const child = spawn(join(root, 'node_modules', '.bin', 'vitest'), ['run', ...args], { cwd: root, stdio: 'inherit', env });
// A signal is not passed on: Ctrl-C reaches Vitest through the process group, and Vitest exits
// 1 ms after a signal without its teardown (only the compose tier's setup handles signals
// itself). So this process stays until Vitest has gone, rather than leaving it without a parent.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => undefined);
const vitest = await new Promise((resolve) => {
  child.on('error', (err) => resolve({ status: 1, error: err }));
  child.on('exit', (status, signal) => resolve({ status: status ?? (signal ? 128 : 1) }));
});
if (vitest.error) console.error(`could not run vitest: ${vitest.error.message}`);

let passed = 0;
let failed = 0;
let skipped = 0;
let cockroachLine;
const failures = [];
if (existsSync(results)) {
  const report = JSON.parse(readFileSync(results, 'utf8'));
  passed = report.numPassedTests ?? 0;
  failed = report.numFailedTests ?? 0;
  skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A file that failed to load has no failed test but is a failure all the same.
  const brokenFiles = (report.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).length === 0).length;
  failed += brokenFiles;
  for (const file of report.testResults ?? []) {
    const name = String(file.name).replace(`${root}/`, '');
    const tests = (file.assertionResults ?? []).filter((t) => t.status === 'failed');
    if (file.status === 'failed' && tests.length === 0) failures.push(`${name}: ${firstLine(file.message) || 'failed to load'}`);
    for (const t of tests) failures.push(`${name} > ${t.fullName ?? t.title}: ${firstLine(t.failureMessages?.[0])}`);
  }
  cockroachLine = cockroachSuiteLine(report);
}
const code = vitest.status ?? 1;
if (code !== 0 && failed === 0) failed = 1; // vitest failed outside any test (setup, config): never report it as green
// The failures again, right above the count, so a log that keeps only its tail still names them.
for (const failure of failures) console.log(`FAILED  ${failure}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (cockroachLine) console.log(cockroachLine);
if (passed === 0 && code === 0) {
  console.error('no test ran');
  process.exit(1);
}
process.exit(code);

function firstLine(text) {
  return String(text ?? '').split('\n').find((line) => line.trim() !== '')?.trim().slice(0, 300) ?? '';
}

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
