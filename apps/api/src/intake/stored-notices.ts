import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { LOGGER, type Logger } from '#libs/observability';
import { createSubscriberConnection, redisKeys, type StoredNotice } from '#libs/queue';

/**
 * Listens for the writer's after-COMMIT notices so `?wait=true` requests can answer 201.
 * A lost notice (a Redis blip) only means the client gets the usual 202 after the timeout.
 */
@Injectable()
export class StoredNotices implements OnApplicationBootstrap, OnApplicationShutdown {
  private subscriber?: Redis;
  private readonly waiters = new Map<string, Set<(notice: StoredNotice) => void>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const channel = redisKeys(this.config.redis.keyPrefix).storedChannel;
    this.subscriber = createSubscriberConnection({ url: this.config.redis.url, commandTimeoutMs: this.config.redis.commandTimeoutMs, name: 'api-notices' });
    this.subscriber.on('error', (err) => this.logger.debug({ err: err.message }, 'notice subscriber error'));
    this.subscriber.on('message', (_channel: string, message: string) => {
      if (this.waiters.size === 0) return;
      for (const notice of JSON.parse(message) as StoredNotice[]) this.waiters.get(notice.id)?.forEach((settle) => settle(notice));
    });
    // Not awaited: the API must start even while Redis is down; the subscription is made on connect.
    this.subscriber.subscribe(channel).catch((err: unknown) => this.logger.warn({ err: String(err) }, 'could not subscribe to stored notices'));
  }

  /** Register before enqueueing, so a fast writer cannot announce the commit before anyone listens. */
  waitFor(id: string, timeoutMs: number): { promise: Promise<StoredNotice | undefined>; cancel: () => void } {
    let timer: NodeJS.Timeout | undefined;
    let settle: (n: StoredNotice | undefined) => void = () => undefined;
    const promise = new Promise<StoredNotice | undefined>((resolve) => {
      settle = (notice) => {
        clearTimeout(timer);
        const set = this.waiters.get(id);
        set?.delete(settle);
        if (set?.size === 0) this.waiters.delete(id);
        resolve(notice);
      };
      const set = this.waiters.get(id) ?? new Set();
      set.add(settle);
      this.waiters.set(id, set);
      timer = setTimeout(() => settle(undefined), timeoutMs);
    });
    return { promise, cancel: () => settle(undefined) };
  }

  onApplicationShutdown(): void {
    this.subscriber?.disconnect();
  }
}
