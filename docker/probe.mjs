// Asks the meter-intake process in this container over its local port.
//   node docker/probe.mjs health [api|writer]   exit 0 when /health/ready answers 200 (the image's HEALTHCHECK)
//   node docker/probe.mjs get PATH [api|writer] print the answer to GET PATH, e.g. /metrics
// Without a role it uses the one the entrypoint recorded for this container. The API listens on
// $PORT (3000), the writer's health/metrics server on $WRITER_HEALTH_PORT (3100).
import { readFileSync } from 'node:fs';

const [command = 'health', ...rest] = process.argv.slice(2);
const path = command === 'get' ? rest.shift() : '/health/ready';
let role = rest[0];
if (!role) {
  try {
    role = readFileSync('/tmp/meter-intake.role', 'utf8').trim();
  } catch {
    role = 'unknown';
  }
}

if (role !== 'api' && role !== 'writer') {
  // migrate and loadgen have no server: nothing to ask, so nothing to report as unhealthy.
  if (command === 'health') process.exit(0);
  console.error(`this container runs ${role}, which has no HTTP port; name api or writer`);
  process.exit(2);
}
if (!path?.startsWith('/')) {
  console.error('usage: node docker/probe.mjs health [api|writer] | get PATH [api|writer]');
  process.exit(2);
}

const port = role === 'writer' ? process.env.WRITER_HEALTH_PORT || '3100' : process.env.PORT || '3000';
try {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(4_000) });
  const body = await res.text();
  if (command === 'get') process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
  else if (res.status !== 200) console.error(`${role} ${path}: ${res.status} ${body}`);
  process.exit(res.status === 200 ? 0 : 1);
} catch (err) {
  console.error(`${role} ${path}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
