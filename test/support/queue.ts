import { Redis } from 'ioredis';
import { ReadingsQueue } from '#libs/queue';

/** The readings queue under `prefix` on its own connection, for a test to look inside; closed after `fn`. */
export async function withQueue<T>(redisUrl: string, prefix: string, fn: (queue: ReadingsQueue, redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    return await fn(new ReadingsQueue(redis, prefix), redis);
  } finally {
    redis.disconnect();
  }
}
