// Every npm script must work as the first command after a clone, before node_modules exists:
// whatever runs before the dependency install may import Node's built-ins only, and a binary from
// node_modules (eslint, tsc, vitest) or the build (dist/) runs only after a step that installs.
// The clean-clone run in .ci/run proves it for real; this catches a regression in milliseconds.
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts;

// `import … from '…'`, `export … from '…'` and `import '…'` at the start of a line; dynamic
// `await import('…')` is what a module does after the install, and is not matched.
const STATIC_IMPORT = /^\s*(?:import|export)\s[^;'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;

export function staticImports(source) {
  return [...source.matchAll(STATIC_IMPORT)].map((m) => m[1] ?? m[2]);
}

/** Every module the file loads before its first line runs: it and its static imports, recursively. */
function staticClosure(file, seen = new Map()) {
  if (seen.has(file)) return seen;
  const specifiers = staticImports(readFileSync(file, 'utf8'));
  seen.set(file, specifiers);
  for (const s of specifiers) {
    if (s.startsWith('.')) staticClosure(resolve(dirname(file), s), seen);
  }
  return seen;
}

const isBuiltin = (s) => s.startsWith('node:') || builtinModules.includes(s);

/** The commands of one npm script, in order; `npm run x` / `npm test` / `npm start` are expanded. */
function commands(name, depth = 0) {
  if (depth > 5) throw new Error(`npm scripts call each other too deeply at ${name}`);
  return scripts[name].split('&&').flatMap((part) => {
    const words = part.trim().split(/\s+/);
    if (words[0] === 'npm') {
      const target = words[1] === 'run' ? words[2] : words[1];
      return commands(target, depth + 1);
    }
    return [{ script: name, words }];
  });
}

describe('npm scripts on a fresh clone', () => {
  for (const name of Object.keys(scripts)) {
    it(`${name}: nothing before the dependency install imports an npm package`, () => {
      let installed = false;
      for (const { script, words } of commands(name)) {
        if (words[0] === 'node') {
          const file = join(root, words[1]);
          expect(existsSync(file), `${script}: ${words[1]} exists`).toBe(true);
          if (words[1].startsWith('dist/')) {
            expect(installed, `${script}: ${words[1]} is the build, which must not run before an install and build step`).toBe(true);
            continue;
          }
          for (const [module, specifiers] of staticClosure(file)) {
            const packages = specifiers.filter((s) => !s.startsWith('.') && !isBuiltin(s));
            expect(packages, `${script}: ${module.slice(root.length + 1)} imports npm packages statically`).toEqual([]);
          }
          if (/\bensureDependencies\(\)/.test(readFileSync(file, 'utf8'))) installed = true;
        } else {
          // Any other program (eslint, tsc, vitest) comes from node_modules.
          expect(installed, `${script}: ${words[0]} runs before anything installs the npm dependencies`).toBe(true);
        }
      }
    });
  }

  it('the import scanner sees the forms the scripts use, and not dynamic imports', () => {
    const src = ["import { a } from 'node:fs';", 'import {', '  b,', "} from './x.mjs';", "import 'reflect-metadata';", "export { c } from 'pg';", "const { default: d } = await import('autocannon');"].join('\n');
    expect(staticImports(src)).toEqual(['node:fs', './x.mjs', 'reflect-metadata', 'pg']);
  });
});
