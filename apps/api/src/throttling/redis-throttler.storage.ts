import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import { LuaScript } from '#libs/queue';
import { ApiError } from '../http/api-error.js';

/** What the throttler expects back: its record type is not exported from the package's entry. */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * Adds each replica's new hits to the clients' shared window counters, many clients in one
 * call: KEYS are the counters, ARGV[1] the window (ms), ARGV[1 + i] the hits for KEYS[i].
 * Returns, per key, the window's total and the milliseconds left in it.
 */
const ADD_HITS_SCRIPT = new LuaScript(`
local out = {}
for i, key in ipairs(KEYS) do
  local delta = tonumber(ARGV[i + 1])
  local hits = redis.call('INCRBY', key, delta)
  if hits == delta then redis.call('PEXPIRE', key, ARGV[1]) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('PEXPIRE', key, ARGV[1]); ttl = tonumber(ARGV[1]) end
  out[#out + 1] = hits
  out[#out + 1] = ttl
end
return out
`);

/** Counters sent to Redis in one script call at most. */
const KEYS_PER_SYNC = 500;

interface Budget {
  id: string;
  /** The window's total across all replicas, as of this replica's last sync. */
  known: number;
  /** This replica's hits not yet sent to Redis. */
  pending: number;
  /** Hits on their way to Redis: counted until the reply's total includes them. */
  sending: number;
  /** When the window ends (epoch ms), from Redis's PTTL. */
  endsAt: number;
  /** When `known` was last read from Redis (epoch ms); 0 before the window's first sync. */
  syncedAt: number;
}

/**
 * Rate-limit counters shared by every API replica without a Redis round trip per request.
 * Each replica counts a client's hits locally and adds them to the client's counter in Redis
 * every `syncMs`, all clients in one script call, learning the total across replicas in the
 * same reply. A hit waits for one round trip (its own hit sent, the total read back) when:
 *   - it is the first of the client's window on this replica;
 *   - the replica's view of the total is older than `syncMs`;
 *   - the replica has counted, since its last sync, half of what was left of the budget then:
 *     near the limit every hit goes to Redis, so the last hits are counted exactly.
 * A client that is already over the limit is counted locally (a flood does not turn into a
 * Redis call per request).
 *
 * Tolerance: on one replica, exact. Across replicas a replica decides on a total at most `syncMs`
 * (plus a round trip) old, and spends at most half of the budget left at its last sync before it
 * reads the total again. Requests spread over time get past the limit by at most the client's
 * hits on the other replicas in the last `syncMs`; a burst that reaches several replicas at once
 * gets past it by at most about half of the budget left at each replica's last sync (measured:
 * 26 admitted against a limit of 20 for a burst alternating between two replicas with no timed
 * sync; test/integration/rate-limit-budget.spec.ts).
 *
 * When Redis is unreachable the request gets the same fast 503 as an enqueue would.
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  private readonly budgets = new Map<string, Budget>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private windowsStarted = 0;

  constructor(
    private readonly redis: Redis,
    private readonly keyFor: (key: string) => string,
    private readonly syncMs: number,
  ) {}

  async increment(key: string, ttl: number, limit: number, _blockDuration: number, throttlerName: string): Promise<ThrottlerStorageRecord> {
    if (this.redis.status !== 'ready') throw unavailable();
    const id = this.keyFor(`${throttlerName}:${key}`);
    const now = Date.now();
    let budget = this.budgets.get(id);
    if (!budget || now >= budget.endsAt) {
      // A new window on this replica: never synced, so its first hit goes to Redis (below).
      budget = { id, known: 0, pending: 0, sending: 0, endsAt: now + ttl, syncedAt: 0 };
      this.budgets.set(id, budget);
      if (++this.windowsStarted % 1_000 === 0) this.prune();
    }
    const counted = budget.known + budget.sending + budget.pending;
    const left = limit - budget.known;
    budget.pending++;
    const stale = Date.now() - budget.syncedAt > this.syncMs;
    const spentHalf = counted < limit && counted + 1 - budget.known > Math.ceil(left / 2);
    if (stale || spentHalf) {
      try {
        await this.add(ttl, [budget]);
      } catch {
        // Not served, so not counted: the failed sync put this hit back among the pending ones.
        budget.pending--;
        throw unavailable();
      }
    } else {
      this.scheduleSync(ttl);
    }
    const hits = budget.known + budget.sending + budget.pending;
    const seconds = Math.max(1, Math.ceil((budget.endsAt - Date.now()) / 1000));
    const blocked = hits > limit;
    return { totalHits: hits, timeToExpire: seconds, isBlocked: blocked, timeToBlockExpire: blocked ? seconds : 0 };
  }

  /** Sends every pending hit now (the timer's work; tests call it to sync at a known moment). */
  async flush(ttl: number): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.syncing;
    this.prune();
    const due = [...this.budgets.values()].filter((b) => b.pending > 0);
    for (let i = 0; i < due.length; i += KEYS_PER_SYNC) await this.add(ttl, due.slice(i, i + KEYS_PER_SYNC)).catch(() => undefined);
  }

  private scheduleSync(ttl: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const sync = this.flush(ttl).finally(() => {
        if (this.syncing === sync) this.syncing = undefined;
      });
      this.syncing = sync;
    }, this.syncMs);
    this.timer.unref();
  }

  /** Adds the budgets' pending hits in Redis and takes the totals back; on failure they stay pending. */
  private async add(ttl: number, budgets: readonly Budget[]): Promise<void> {
    const sent = budgets.map((b) => {
      const n = b.pending;
      b.pending = 0;
      b.sending += n;
      return { b, n };
    });
    let reply: number[];
    try {
      reply = (await ADD_HITS_SCRIPT.run(this.redis, budgets.map((b) => b.id), [ttl, ...sent.map((s) => s.n)])) as number[];
    } catch (err) {
      for (const s of sent) {
        s.b.sending -= s.n;
        s.b.pending += s.n;
      }
      throw err;
    }
    const now = Date.now();
    sent.forEach((s, i) => {
      // The total includes these hits now; hits counted meanwhile stay pending.
      s.b.sending -= s.n;
      s.b.known = reply[2 * i]!;
      s.b.endsAt = now + reply[2 * i + 1]!;
      s.b.syncedAt = now;
    });
  }

  /**
   * Forgets windows that ended. Hits still pending there belong to a window Redis has expired:
   * sent now, they would count against the next one.
   */
  private prune(): void {
    const now = Date.now();
    for (const [id, b] of this.budgets) if (now >= b.endsAt && b.sending === 0) this.budgets.delete(id);
  }
}

function unavailable(): ApiError {
  return new ApiError(503, 'queue_unavailable', 'the reading queue is unreachable; retry shortly', [], { 'retry-after': '1' });
}
