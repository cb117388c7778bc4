import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '#libs/config';
import { SubmissionCoalescer } from './coalescer.js';
import type { IntakeQueue, Submission } from './intake-queue.js';

/** A queue whose sends the test completes by hand, recording each group it was given. */
function manualQueue() {
  const sends: { ids: string[]; finish: (conflicts?: number[]) => void; fail: (err: Error) => void }[] = [];
  const queue = {
    enqueue: (group: readonly Submission[]) =>
      new Promise<Set<number>>((resolve, reject) => {
        sends.push({ ids: group.map((s) => s.reading.id), finish: (c = []) => resolve(new Set(c)), fail: reject });
      }),
  };
  return { sends, queue: queue as unknown as IntakeQueue };
}

function submission(id: string, meterId = 'm-1'): Submission {
  return { reading: { id, meterId, readAt: '2026-11-30T10:00:00.000Z', values: { t1: 1 }, period: '2026-11', receivedAt: '2026-11-30T10:00:00.000Z' }, fingerprint: '' };
}

function coalescer(env: Record<string, string> = {}) {
  const { sends, queue } = manualQueue();
  return { sends, c: new SubmissionCoalescer(loadConfig({ DATABASE_URL: 'postgres://x@127.0.0.1/x', ...env }), queue) };
}

describe('SubmissionCoalescer (group commit)', () => {
  it('sends a lone submission at the end of the event-loop turn, waiting for no timer', async () => {
    const { sends, c } = coalescer();
    const answer = c.submit(submission('a'));
    expect(sends).toHaveLength(0);
    await nextTurn();
    expect(sends.map((s) => s.ids)).toEqual([['a']]);
    sends[0]!.finish();
    await expect(answer).resolves.toBe(false);
  });

  it('puts submissions of the same turn in one group', async () => {
    const { sends, c } = coalescer();
    const answers = ['a', 'b', 'c'].map((id) => c.submit(submission(id)));
    await nextTurn();
    expect(sends.map((s) => s.ids)).toEqual([['a', 'b', 'c']]);
    sends[0]!.finish();
    await Promise.all(answers);
  });

  it('gathers arrivals while a send is in flight and sends them together when it returns', async () => {
    const { sends, c } = coalescer();
    const first = c.submit(submission('a'));
    await nextTurn();
    const later = ['b', 'c', 'd'].map((id) => c.submit(submission(id)));
    await nextTurn();
    await nextTurn();
    expect(sends).toHaveLength(1); // b, c, d wait for a's send
    sends[0]!.finish();
    await first;
    await nextTurn();
    expect(sends.map((s) => s.ids)).toEqual([['a'], ['b', 'c', 'd']]);
    sends[1]!.finish();
    await Promise.all(later);
  });

  it('bounds a group by count; a full group goes out beside the one in flight', async () => {
    const { sends, c } = coalescer({ COALESCE_MAX_READINGS: '2' });
    void c.submit(submission('a'));
    await nextTurn();
    ['b', 'c', 'd', 'e', 'f'].forEach((id) => void c.submit(submission(id)));
    await nextTurn();
    // a in flight; b+c and d+e are full groups and go at once; f waits for a send to return.
    expect(sends).toHaveLength(3);
    expect(sends.map((s) => s.ids)).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
    sends[0]!.finish();
    await nextTurn();
    expect(sends.map((s) => s.ids).at(-1)).toEqual(['f']);
  });

  it('bounds a group by bytes, and still sends a submission larger than the bound on its own', async () => {
    const { sends, c } = coalescer({ COALESCE_MAX_BYTES: '1024' });
    const big = 'x'.repeat(600);
    ['a', 'b', 'c'].forEach((id) => void c.submit(submission(id, big)));
    await nextTurn();
    // a alone (b would pass the bound); b because b+c are full; c waits for a send to return.
    expect(sends.map((s) => s.ids)).toEqual([['a'], ['b']]);
    sends[0]!.finish();
    await nextTurn();
    expect(sends.map((s) => s.ids).at(-1)).toEqual(['c']);
    const huge = 'y'.repeat(2_000);
    sends.forEach((s) => s.finish());
    await nextTurn();
    void c.submit(submission('d', huge));
    await nextTurn();
    expect(sends.map((s) => s.ids).at(-1)).toEqual(['d']);
  });

  it("answers each caller with its own conflict, and a failed send fails only its group's callers", async () => {
    const { sends, c } = coalescer();
    const [a, b] = [c.submit(submission('a')), c.submit(submission('b'))];
    await nextTurn();
    const d = c.submit(submission('d'));
    sends[0]!.finish([1]);
    await expect(a).resolves.toBe(false);
    await expect(b).resolves.toBe(true);
    await nextTurn();
    sends[1]!.fail(new Error('redis went away'));
    await expect(d).rejects.toThrow('redis went away');
    const e = c.submit(submission('e'));
    await nextTurn();
    sends[2]!.finish();
    await expect(e).resolves.toBe(false);
  });
});
