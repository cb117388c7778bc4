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
    enableAutoPipelining: true,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectEvery,
    lazyConnect: false,
  });
}

/** Workers block on Redis by design: BullMQ requires maxRetriesPerRequest null. */
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

/** BullMQ warns but does not refuse when Redis may evict keys: refuse here instead. */
export async function assertNoEviction(redis: Redis): Promise<void> {
  const reply = await redis.config('GET', 'maxmemory-policy');
  const policy = reply[1];
  if (policy !== 'noeviction') {
    throw new Error(`Redis maxmemory-policy is ${policy}; queued readings could be evicted. Set maxmemory-policy noeviction.`);
  }
}
