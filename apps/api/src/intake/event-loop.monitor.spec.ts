import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { EventLoopMonitor } from './event-loop.monitor.js';

function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: the event loop cannot turn
  }
}

describe('EventLoopMonitor', () => {
  let monitor: EventLoopMonitor | undefined;
  afterEach(() => monitor?.stop());

  it('reports overload after the loop was blocked beyond the threshold, and recovers', async () => {
    monitor = new EventLoopMonitor(100, 50);
    await sleep(120);
    expect(monitor.overloaded).toBe(false);
    blockFor(300);
    // Both timers are overdue now and fire on the next turn: the window that saw the block is read.
    await sleep(10);
    expect(monitor.lastDelayMs).toBeGreaterThan(100);
    expect(monitor.overloaded).toBe(true);
    await sleep(200);
    expect(monitor.overloaded).toBe(false);
  });

  it('never sheds when the threshold is 0 (disabled)', async () => {
    monitor = new EventLoopMonitor(0, 50);
    await sleep(120);
    blockFor(200);
    await sleep(10);
    expect(monitor.lastDelayMs).toBeGreaterThan(100);
    expect(monitor.overloaded).toBe(false);
  });
});
