import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#libs/config';

interface Window {
  count: number;
  endsAt: number;
}

/** Addresses tracked at most; beyond that the oldest windows are dropped (a flood of addresses must not grow memory without bound). */
const MAX_ADDRESSES = 100_000;

/**
 * Requests with a missing or bad key, counted per client address in fixed windows. Once an
 * address reaches AUTH_FAILURES_PER_WINDOW in a window, its keys are no longer looked up until
 * the window ends (429), unless the replica already trusts them: a key guesser gets a handful of
 * tries per minute, not thousands. Per replica, so across N replicas an address gets at most N times the budget
 * (nginx's per-address limit applies to every request before this).
 */
@Injectable()
export class AuthFailures {
  private readonly windows = new Map<string, Window>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** Seconds until the address may try again; 0 if it may now. */
  blockedFor(address: string): number {
    const w = this.windows.get(address);
    const now = Date.now();
    if (!w || w.endsAt <= now) return 0;
    return w.count >= this.config.auth.failuresPerWindow ? Math.ceil((w.endsAt - now) / 1000) : 0;
  }

  record(address: string): void {
    const now = Date.now();
    const w = this.windows.get(address);
    if (w && w.endsAt > now) {
      w.count++;
      return;
    }
    if (this.windows.size >= MAX_ADDRESSES) {
      for (const [a, old] of this.windows) if (old.endsAt <= now) this.windows.delete(a);
      if (this.windows.size >= MAX_ADDRESSES) this.windows.delete(this.windows.keys().next().value!);
    }
    this.windows.set(address, { count: 1, endsAt: now + this.config.auth.failureWindowMs });
  }
}
