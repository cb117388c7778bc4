// The lock file must list the optional platform binaries of every platform, not only this
// machine's: npm 11's `npm ci` (the npm in the Node 26 image the Dockerfile builds on) refuses a
// lock that lacks one (npm/cli#8805), and `npm install` run with node_modules present can drop
// them again (npm/cli#4828). Regenerate missing entries with:
//   npm install --package-lock-only   (after deleting the package's entries from the lock)
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));

/** Where npm would find `dep` for the package at `path`: its own node_modules, then each parent's. */
function resolveInLock(path, dep) {
  for (let base = path; ; ) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${dep}`;
    if (lock.packages[candidate]) return candidate;
    if (!base) return undefined;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut < 0 ? '' : base.slice(0, cut);
  }
}

describe('package-lock.json', () => {
  it('has an entry, with version and integrity, for every optional dependency of every package', () => {
    const missing = [];
    let checked = 0;
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
        checked++;
        const at = resolveInLock(path, dep);
        if (!at || !lock.packages[at].version || !lock.packages[at].integrity) missing.push(`${dep} (wanted by ${path || 'the root'})`);
      }
    }
    expect(checked).toBeGreaterThan(10); // @swc/core alone has a dozen platform binaries
    expect(missing).toEqual([]);
  });
});
