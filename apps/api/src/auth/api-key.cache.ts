import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { type ApiClient, ApiClientStore } from '#libs/database';
import { LOGGER, type Logger } from '#libs/observability';

interface Entry {
  client: ApiClient;
  /** When the database last confirmed this key (epoch ms). */
  checkedAt: number;
}

/** The key could not be checked: the database did not answer and this replica has not seen the key. */
export class KeyLookupUnavailableError extends Error {}

/**
 * Key lookups without a database query per request. A key the database confirmed is trusted for
 * AUTH_CACHE_TTL_MS; the first request after that checks it again (one query, awaited), so a
 * revoked key stops working at most AUTH_CACHE_TTL_MS after the revocation, plus that query.
 * When the check cannot reach the database, a key this replica already knows keeps working:
 * intake goes on during a database outage. A key it has never seen gets KeyLookupUnavailableError
 * (503), not 401, since it may well be valid. Concurrent checks of one key share one query.
 */
@Injectable()
export class ApiKeyCache implements OnModuleDestroy {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<ApiClient | undefined>>();
  private readonly used = new Set<string>();
  private readonly store: ApiClientStore;
  private readonly touchTimer: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    dataSource: DataSource,
  ) {
    this.store = new ApiClientStore(dataSource);
    // last_used_at: one UPDATE for every client seen in the interval, best effort.
    this.touchTimer = setInterval(() => void this.flushUse(), config.auth.lastUsedFlushMs);
    this.touchTimer.unref();
  }

  async resolve(keyHash: string): Promise<ApiClient | undefined> {
    const entry = this.entries.get(keyHash);
    if (entry && Date.now() - entry.checkedAt < this.config.auth.cacheTtlMs) return this.use(entry.client);
    let client: ApiClient | undefined;
    try {
      client = await this.lookup(keyHash);
    } catch (err) {
      if (entry) return this.use(entry.client);
      throw new KeyLookupUnavailableError(err instanceof Error ? err.message : String(err));
    }
    if (!client) {
      this.entries.delete(keyHash);
      return undefined;
    }
    this.entries.set(keyHash, { client, checkedAt: Date.now() });
    return this.use(client);
  }

  /** Whether the key was confirmed within the TTL: answered from memory, nothing looked up. */
  trusted(keyHash: string): boolean {
    const entry = this.entries.get(keyHash);
    return entry !== undefined && Date.now() - entry.checkedAt < this.config.auth.cacheTtlMs;
  }

  private use(client: ApiClient): ApiClient {
    this.used.add(client.id);
    return client;
  }

  private lookup(keyHash: string): Promise<ApiClient | undefined> {
    let p = this.inFlight.get(keyHash);
    if (!p) {
      const timeoutMs = this.config.auth.lookupTimeoutMs;
      p = Promise.race([
        this.store.findActiveByHash(keyHash),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`key lookup took over ${timeoutMs} ms`)), timeoutMs).unref()),
      ]).finally(() => this.inFlight.delete(keyHash));
      this.inFlight.set(keyHash, p);
    }
    return p;
  }

  private async flushUse(): Promise<void> {
    if (this.used.size === 0) return;
    const ids = [...this.used];
    this.used.clear();
    await this.store.touch(ids).catch((err: unknown) => this.logger.debug({ err: String(err) }, 'could not record key use'));
  }

  onModuleDestroy(): void {
    clearInterval(this.touchTimer);
  }
}
