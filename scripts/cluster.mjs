// `npm run cluster -- status` and `npm run cluster -- scale api=N writers=M`: talks to the
// running supervisor (npm start) over its Unix socket.
// Node built-ins only: it needs no npm package, so it works the same on a fresh clone.
import { controlCall } from './cluster/control-client.mjs';
import { localCluster, socketOf, takeDataDir } from './cluster/local-cluster.mjs';

const argv = process.argv.slice(2);
const dataDir = takeDataDir(argv);
const socketPath = socketOf(dataDir);
const [command, ...rest] = argv;

function call(method, path, body) {
  return controlCall(socketPath, method, path, body).catch((err) => {
    throw new Error(localCluster(dataDir).message ?? `the supervisor does not answer on ${socketPath} (${err.code})`);
  });
}

function print(s) {
  const rows = [['part', 'where', 'pid', 'health', 'restarts']];
  rows.push(['nginx', s.nginx.url, s.nginx.pid, s.nginx.health, '-']);
  for (const a of s.api) rows.push([a.name, a.url, a.pid, a.health, a.restarts]);
  for (const w of s.writers) rows.push([w.name, w.health === undefined ? w.health : w.health, w.pid, w.health, w.restarts]);
  if (s.postgres) rows.push(['postgres', `${s.postgres.primary} (+ replica ${s.postgres.replica})`, '-', s.postgres.health, '-']);
  for (const n of s.cockroach?.nodes ?? []) rows.push([n.name, n.sql, n.pid, n.health, '-']);
  rows.push(['redis', s.redis.url, s.redis.pid, s.redis.health, '-']);
  for (const w of s.writers) rows[rows.findIndex((r) => r[0] === w.name)][1] = w.metrics.replace('/metrics', '');
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  console.log(rows.map((r) => r.map((v, c) => String(v).padEnd(widths[c])).join('  ')).join('\n'));
}

try {
  if (command === 'status') {
    const res = await call('GET', '/status');
    if (res.status !== 200) throw new Error(res.body.error);
    if (rest.includes('--json')) console.log(JSON.stringify(res.body, null, 2));
    else print(res.body);
  } else if (command === 'scale') {
    const target = {};
    for (const arg of rest) {
      const m = /^(api|writers)=(\d+)$/.exec(arg);
      if (!m) throw new Error(`bad argument ${arg}: expected api=N and/or writers=M`);
      target[m[1]] = Number(m[2]);
    }
    if (Object.keys(target).length === 0) throw new Error('nothing to scale: give api=N and/or writers=M');
    const res = await call('POST', '/scale', target);
    if (res.status !== 200) throw new Error(res.body.error);
    print(res.body);
  } else if ((command === 'stop' || command === 'start') && ['postgres', 'redis'].includes(rest[0])) {
    // Outage drills: the part stays down (the watchdog leaves it) until started again.
    const res = await call('POST', `/${command}/${rest[0]}`);
    if (res.status !== 200) throw new Error(res.body.error);
    console.log(`${rest[0]}: ${res.body[rest[0]]}`);
  } else {
    console.log('usage: npm run cluster -- status [--json] | scale api=N writers=M | stop|start postgres|redis   [--data-dir DIR]');
    process.exit(command ? 2 : 0);
  }
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
