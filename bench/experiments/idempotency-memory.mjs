// Redis bytes per keyed reading: `node bench/experiments/idempotency-memory.mjs [readings]`
//
// Starts a throwaway redis-server (AOF off: only memory is measured) on a free port and claims
// N idempotency keys through the API's own claim script, with the key layout the API uses
// today and with the layout before 2026-12-04 (`mi:idem:client:<client uuid>:<client's key>`),
// then prints used_memory per key for each. AOF and the pending markers are left out. The figure feeds the sizing formula in
// docs/OPERATIONS.md (bytes per keyed reading x rate x window + backlog).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBin, freePort, waitFor } from '../../scripts/lib/stack.mjs';

const n = Number(process.argv[2] ?? 200_000);
const { default: Redis } = await import('ioredis');
const { ReadingsQueue, redisKeys } = await import('../../dist/libs/queue/src/index.js');
const { readingIdForKey } = await import('../../dist/libs/readings/src/index.js');

const dir = mkdtempSync(join(tmpdir(), 'mi-idem-mem-'));
const port = await freePort();
const child = spawn(findBin('redis-server', 'apt-get install -y redis-server'), ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const exited = new Promise((resolve) => child.once('exit', resolve));
const redis = new Redis(`redis://127.0.0.1:${port}`, { retryStrategy: () => 100 });
redis.on('error', () => undefined);
try {
  await waitFor('redis', async () => redis.status === 'ready', 10_000);
  const keys = redisKeys('mi');
  const client = randomUUID();
  const scope = `client:${client}`;
  // A client's own key as the load generator sends it: a UUID.
  const layouts = {
    'before (mi:idem:<scope>:<key>)': (key) => `mi:idem:${scope}:${key}`,
    '2026-12-04 (mi:i:<reading id, base64url>)': (key) => `mi:i:${keys.idempotency(readingIdForKey(scope, key)).split('}i:')[1]}`,
    'hash tag after the prefix, not kept (mi:{q}:i:<reading id, base64url>)': (key) => `mi:{q}:i:${keys.idempotency(readingIdForKey(scope, key)).split('}i:')[1]}`,
    'now ({mi}i:<reading id, base64url>)': (key) => keys.idempotency(readingIdForKey(scope, key)),
  };
  const fingerprint = 'x'.repeat(22);
  const results = [];
  for (const [name, keyOf] of Object.entries(layouts)) {
    await redis.flushall();
    const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
    for (let done = 0; done < n; done += 100) {
      const k = Array.from({ length: 100 }, () => keyOf(randomUUID()));
      // What the claim script stores for a keyed reading once it is written: the pending marker
      // beside it lives only while the reading is queued (the backlog term of the formula).
      await redis.eval(`for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[2], 'NX', 'EX', ARGV[1]) end`, 100, ...k, 86_400, fingerprint);
    }
    const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
    results.push({ layout: name, keys: await redis.dbsize(), bytesPerKey: Math.round((after - before) / n), example: keyOf('3f0e2b9c-5d0a-4c8e-9a57-0c7d2f1e4b6a') });
  }
  console.table(results);

  // The backlog term: a waiting job of singles (the coalescer's group) and of a batch, per reading,
  // with its pending markers, as the API queues them (one stream entry per job).
  const queue = new ReadingsQueue(redis, 'mi');
  const backlog = [];
  for (const perJob of [4, 100, 1000]) {
    await redis.flushall();
    const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
    const jobs = Math.ceil(20_000 / perJob);
    for (let j = 0; j < jobs; j++) {
      const readings = Array.from({ length: perJob }, (_, i) => ({
        id: randomUUID(), meterId: `MTR-${String(j * perJob + i).padStart(8, '0')}`, accountId: '1234567890', period: '2026-11',
        readAt: '2026-11-20T09:30:00.000Z', receivedAt: '2026-11-20T09:31:02.123Z', values: { t1: 12345.6, t2: 6789.1 },
        source: 'web', requestId: randomUUID(), clientId: client,
      }));
      await queue.enqueue(readings.map((reading) => ({ reading, fingerprint: '' })), 86_400);
    }
    const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
    backlog.push({ readingsPerJob: perJob, jobs, bytesPerQueuedReading: Math.round((after - before) / (jobs * perJob)) });
  }
  console.table(backlog);
} finally {
  redis.disconnect();
  child.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
