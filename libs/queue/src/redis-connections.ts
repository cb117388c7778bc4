import { Redis } from 'ioredis';

interface ConnectionOptions {
  url: string;
  commandTimeoutMs: number;
  name: string;
}

const reconnectEvery = (times: number) => Math.min(100 * times, 1_000);

/**
 * The API's producer connection fails fast: no offline queue, short timeouts. A request
 * must get a 503 within about a second when Redis is away, never hang waiting for it.
 */
export function createProducerConnection(o: ConnectionOptions): Redis {
  return new Redis(o.url, {
    connectionName: o.name,
    enableOfflineQueue: false,
    enableAutoPipelining: false,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectEvery,
    lazyConnect: false,
  });
}

/** Writers block on Redis by design (XREADGROUP … BLOCK) and wait out an outage rather than fail each command: no retry limit, reconnect for ever. */
export function createWorkerConnection(o: ConnectionOptions): Redis {
  return new Redis(o.url, {
    connectionName: o.name,
    maxRetriesPerRequest: null,
    retryStrategy: reconnectEvery,
  });
}

/** Pub/sub subscriber: reconnects and resubscribes by itself. */
export function createSubscriberConnection(o: ConnectionOptions): Redis {
  return new Redis(o.url, {
    connectionName: o.name,
    maxRetriesPerRequest: null,
    retryStrategy: reconnectEvery,
  });
}

/**
 * A 202 promises the job survives a Redis restart: that needs the append-only file and a
 * policy that never evicts. Redis itself accepts either setting; refuse to start on the wrong one.
 * Returns the `appendfsync` policy: only `always` keeps every acknowledged job through a
 * `kill -9` of Redis (with `everysec` Redis postpones its AOF write while a background fsync
 * is slow, yet still replies), so the caller warns about any other value.
 */
export async function assertDurableRedis(redis: Redis): Promise<{ appendfsync: string }> {
  const policy = (await redis.config('GET', 'maxmemory-policy'))[1];
  if (policy !== 'noeviction') {
    throw new Error(`Redis maxmemory-policy is ${policy}; queued readings could be evicted. Set maxmemory-policy noeviction.`);
  }
  const appendonly = (await redis.config('GET', 'appendonly'))[1];
  if (appendonly !== 'yes') {
    throw new Error('Redis appendonly is off: acknowledged readings would be lost on a Redis restart. Set appendonly yes.');
  }
  return { appendfsync: String((await redis.config('GET', 'appendfsync'))[1]) };
}
