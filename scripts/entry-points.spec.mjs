// Every npm script must work as the first command after a clone, before node_modules exists:
// whatever runs before the dependency install may import Node's built-ins only, and a binary from
// node_modules (eslint, tsc, vitest) or the build (dist/) runs only after a step that installs
// (and, for dist/, builds). The clean-clone run in .ci/run proves it for real; this catches a
// regression in milliseconds. Files are parsed with TypeScript's parser, not matched with a regex.
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts;
const isBuiltin = (s) => s.startsWith('node:') || builtinModules.includes(s);
const isPackage = (s) => !s.startsWith('.') && !s.startsWith('/') && !isBuiltin(s);

/**
 * What a module does as it loads, in order: its static imports (loaded before its first line
 * runs), and, statement by statement at the top level, calls of ensureDependencies/ensureBuilt
 * and dynamic imports (outside function bodies, which run later).
 */
export function analyse(source, fileName = 'module.mjs') {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const staticImports = [];
  const steps = [];
  const visit = (node) => {
    if (ts.isFunctionLike(node) || ts.isClassLike(node)) return; // runs later, if at all
    if (ts.isCallExpression(node)) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) steps.push({ dynamicImport: node.arguments[0].text });
      if (ts.isIdentifier(node.expression) && ['ensureDependencies', 'ensureBuilt'].includes(node.expression.text)) steps.push({ call: node.expression.text });
    }
    ts.forEachChild(node, visit);
  };
  for (const statement of file.statements) {
    if ((ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) && statement.moduleSpecifier && ts.isStringLiteralLike(statement.moduleSpecifier)) {
      staticImports.push(statement.moduleSpecifier.text);
    } else {
      visit(statement);
    }
  }
  return { staticImports, steps };
}

/** Every module the file loads before its first line runs: it and its static imports, recursively. */
function staticClosure(file, seen = new Map()) {
  if (seen.has(file)) return seen;
  const { staticImports } = analyse(readFileSync(file, 'utf8'), file);
  seen.set(file, staticImports);
  for (const s of staticImports) if (s.startsWith('.')) staticClosure(resolve(dirname(file), s), seen);
  return seen;
}

/** The commands of one npm script, in order; `npm run x` / `npm test` / `npm start` are expanded. */
function commands(name, depth = 0) {
  if (depth > 5) throw new Error(`npm scripts call each other too deeply at ${name}`);
  return scripts[name].split('&&').flatMap((part) => {
    const words = part.trim().split(/\s+/);
    if (words[0] === 'npm') return commands(words[1] === 'run' ? words[2] : words[1], depth + 1);
    return [{ script: name, words }];
  });
}

describe('npm scripts on a fresh clone', () => {
  for (const name of Object.keys(scripts)) {
    it(`${name}: nothing before the dependency install imports an npm package`, () => {
      const done = { ensureDependencies: false, ensureBuilt: false };
      for (const { script, words } of commands(name)) {
        if (words[0] !== 'node') {
          // Any other program (eslint, tsc, vitest) comes from node_modules.
          expect(done.ensureDependencies, `${script}: ${words[0]} runs before anything installs the npm dependencies`).toBe(true);
          continue;
        }
        const file = join(root, words[1]);
        expect(existsSync(file), `${script}: ${words[1]} exists`).toBe(true);
        if (words[1].startsWith('dist/')) {
          expect(done.ensureDependencies && done.ensureBuilt, `${script}: ${words[1]} is the build, which must not run before install and build steps`).toBe(true);
          continue;
        }
        for (const [module, specifiers] of staticClosure(file)) {
          expect(specifiers.filter(isPackage), `${script}: ${module.slice(root.length + 1)} imports npm packages statically`).toEqual([]);
        }
        for (const step of analyse(readFileSync(file, 'utf8'), file).steps) {
          if (step.call) done[step.call] = true;
          if (step.dynamicImport && isPackage(step.dynamicImport)) {
            expect(done.ensureDependencies, `${script}: ${words[1]} imports ${step.dynamicImport} before ensureDependencies()`).toBe(true);
          }
        }
      }
    });
  }

  it('the analysis sees the forms the scripts use, and ignores what runs later', () => {
    const src = [
      "import { a } from 'node:fs'; import { b } from './b.mjs';",
      'import {',
      "  c, // don't",
      "} from './c.mjs';",
      "import 'reflect-metadata';",
      "export { d } from 'pg';",
      '// ensureDependencies();',
      "const early = await import('early-package');",
      'ensureDependencies();',
      "const { default: e } = await import('autocannon');",
      "async function later() { ensureBuilt(); return import('later-package'); }",
    ].join('\n');
    const { staticImports, steps } = analyse(src);
    expect(staticImports).toEqual(['node:fs', './b.mjs', './c.mjs', 'reflect-metadata', 'pg']);
    expect(steps).toEqual([{ dynamicImport: 'early-package' }, { call: 'ensureDependencies' }, { dynamicImport: 'autocannon' }]);
  });
});
