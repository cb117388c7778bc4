import { describe, expect, it } from 'vitest';
import { queuedForMs } from './queue-time.js';

describe('queuedForMs', () => {
  const now = 1_796_669_000_000;

  it('reads how long ago nginx stamped the request ($msec: seconds with milliseconds)', () => {
    expect(queuedForMs('t=1796668999.750', now)).toBe(250);
    expect(queuedForMs(['t=1796669000.000', 't=1'], now)).toBe(0);
  });

  it('counts a stamp a little in the future (another host\'s clock) as no wait', () => {
    expect(queuedForMs('t=1796669000.400', now)).toBe(0);
  });

  it('ignores what it cannot trust: no stamp, another format, a clock far apart', () => {
    for (const header of [undefined, '', '1796668999.750', 't=', 't=abc', 't=1796669005', 't=1796668000']) {
      expect(queuedForMs(header, now)).toBeUndefined();
    }
  });
});
