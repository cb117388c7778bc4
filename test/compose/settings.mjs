// What the compose tier's global setup (the engine and the images) and its checks
// (compose.spec.mjs) share: where the cache lives, the project name, and the environment
// docker-compose runs with. Node built-ins only.
import { join } from 'node:path';
import { composeHost } from '../../scripts/compose/host.mjs';

// Environment: COMPOSE_TEST_DIR (cache and engine state), COMPOSE_TEST_KEEP=1 (leave the stack
// and the engine running), COMPOSE_TEST_STANDINS=always (do not try to pull).
export const WORK = process.env.COMPOSE_TEST_DIR || '/var/cache/meter-intake-compose';
export const PROJECT = process.env.COMPOSE_TEST_PROJECT || 'mi-compose-test';
export const KEEP = process.env.COMPOSE_TEST_KEEP === '1';
export const STANDINS = process.env.COMPOSE_TEST_STANDINS || 'auto'; // auto | always
export const COMPOSE_FILE = 'docker-compose.postgres.yml';
export const COMPOSE_FILES = ['docker-compose.postgres.yml', 'docker-compose.cockroach.yml'];
export const APP_IMAGE = 'meter-intake:local';
export const LOGS = join(WORK, 'logs');

/** The environment docker-compose runs with: the engine, and the test's service settings. */
export function composeVars(engineEnv, port) {
  return {
    ...engineEnv,
    COMPOSE_DOCKER_CLI_BUILD: '0',
    DOCKER_BUILDKIT: '0',
    COMPOSE_HTTP_TIMEOUT: '600',
    NGINX_BIND: '127.0.0.1',
    NGINX_PORT: String(port || 8080),
    // Every test client is one address: lift the per-client limit (nginx's own still applies).
    RATE_LIMIT: '10000000',
    // No shedding on event-loop delay: on this 2-core machine, shared with other test suites,
    // replicas booting under load trip it and answer 503 overloaded. That is the service
    // protecting itself (npm test covers it), not what this test is about: routing and scaling.
    SHED_EVENT_LOOP_DELAY_MS: '0',
  };
}

const started = Date.now();
export const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;

/** scripts/compose/host.mjs set up for this project; `port()` is nginx's published port. */
export function host(port = () => 0) {
  const h = composeHost({
    work: WORK,
    logs: LOGS,
    keep: KEEP,
    standins: STANDINS,
    appImage: APP_IMAGE,
    composeFile: COMPOSE_FILE,
    composeEnv: (p) => composeVars(h.engineEnv, p),
    step: (message) => console.log(`\n[compose +${elapsed()}] ${message}`),
    info: (message) => console.log(`      ${message}`),
  });
  const compose = (args, opts = {}) => h.run('docker-compose', ['-p', PROJECT, '-f', COMPOSE_FILE, ...args], { ...opts, env: { ...composeVars(h.engineEnv, port()), ...opts.env } });
  const composeLogged = (args, logName, timeoutMs) => h.runLogged('docker-compose', ['-p', PROJECT, '-f', COMPOSE_FILE, ...args], logName, { env: composeVars(h.engineEnv, port()), timeoutMs });
  return { ...h, compose, composeLogged };
}
