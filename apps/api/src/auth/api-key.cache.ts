import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { type ApiClient, ApiClientStore } from '#libs/database';
import { LOGGER, type Logger } from '#libs/observability';

/** The key could not be checked: the database did not answer and this replica has not seen the key. */
export class KeyLookupUnavailableError extends Error {}

/** After a failed lookup, keys this replica does not know get 503 at once for this long, instead of a query each. */
const LOOKUP_BACKOFF_MS = 1_000;

/**
 * Key lookups without a database query per request. A key is looked up once; from then on this
 * replica knows it, and every AUTH_CACHE_TTL_MS one query in the background checks every key it
 * knows against the database and forgets those revoked. So while the database is reachable, a
 * revoked key stops working within AUTH_CACHE_TTL_MS plus that query, whether or not anyone used
 * it meanwhile. While the database is down nothing is forgotten: the keys known at the last
 * successful check keep working, so intake goes on during a database outage. A key this replica
 * has never seen gets KeyLookupUnavailableError (503), not 401, since it may well be valid.
 * Concurrent lookups of one key share one query.
 */
@Injectable()
export class ApiKeyCache implements OnModuleDestroy {
  private readonly known = new Map<string, ApiClient>();
  private readonly inFlight = new Map<string, Promise<ApiClient | undefined>>();
  private readonly used = new Set<string>();
  private readonly store: ApiClientStore;
  private readonly timers: NodeJS.Timeout[];
  private lookupFailedAt = 0;
  private refreshing = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    dataSource: DataSource,
  ) {
    this.store = new ApiClientStore(dataSource);
    this.timers = [
      setInterval(() => void this.refresh(), Math.max(config.auth.cacheTtlMs, 50)),
      // last_used_at: one UPDATE for every client seen in the interval, best effort.
      setInterval(() => void this.flushUse(), config.auth.lastUsedFlushMs),
    ];
    for (const t of this.timers) t.unref();
  }

  async resolve(keyHash: string): Promise<ApiClient | undefined> {
    const client = this.known.get(keyHash);
    if (client) return this.use(client);
    if (Date.now() - this.lookupFailedAt < LOOKUP_BACKOFF_MS) throw new KeyLookupUnavailableError('the database did not answer the last key lookup');
    let found: ApiClient | undefined;
    try {
      found = await this.lookup(keyHash);
    } catch (err) {
      this.lookupFailedAt = Date.now();
      throw new KeyLookupUnavailableError(err instanceof Error ? err.message : String(err));
    }
    if (!found) return undefined;
    this.known.set(keyHash, found);
    return this.use(found);
  }

  /** Whether this replica knows the key (confirmed, and not seen revoked since): answered from memory. */
  trusted(keyHash: string): boolean {
    return this.known.has(keyHash);
  }

  private use(client: ApiClient): ApiClient {
    this.used.add(client.id);
    return client;
  }

  private withTimeout<T>(work: Promise<T>): Promise<T> {
    const timeoutMs = this.config.auth.lookupTimeoutMs;
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`key lookup took over ${timeoutMs} ms`)), timeoutMs).unref());
    return Promise.race([work, timeout]);
  }

  private lookup(keyHash: string): Promise<ApiClient | undefined> {
    let p = this.inFlight.get(keyHash);
    if (!p) {
      p = this.withTimeout(this.store.findActiveByHash(keyHash)).finally(() => this.inFlight.delete(keyHash));
      this.inFlight.set(keyHash, p);
    }
    return p;
  }

  /** Every known key checked in one query; the revoked ones (and changed scopes or limits) take effect here. */
  private async refresh(): Promise<void> {
    if (this.refreshing || this.known.size === 0) return;
    this.refreshing = true;
    try {
      const hashes = [...this.known.keys()];
      const active = await this.withTimeout(this.store.findActiveByHashes(hashes));
      for (const h of hashes) {
        const client = active.get(h);
        if (client) this.known.set(h, client);
        else this.known.delete(h);
      }
    } catch (err) {
      // The database is away: keep what is known (the outage promise), try again next time.
      this.logger.debug({ err: String(err) }, 'could not refresh the known keys');
    } finally {
      this.refreshing = false;
    }
  }

  private async flushUse(): Promise<void> {
    if (this.used.size === 0) return;
    const ids = [...this.used];
    this.used.clear();
    await this.store.touch(ids).catch((err: unknown) => this.logger.debug({ err: String(err) }, 'could not record key use'));
  }

  onModuleDestroy(): void {
    for (const t of this.timers) clearInterval(t);
  }
}
