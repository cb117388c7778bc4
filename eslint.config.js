import globals from 'globals';
import js from '@eslint/js';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import tseslint from 'typescript-eslint';

const libsRoot = join(import.meta.dirname, 'libs');
/** The lib a path lies in (`libs/<name>/…`), or undefined. */
const libOf = (path) => {
  const rel = relative(libsRoot, path);
  return rel.startsWith('..') || isAbsolute(rel) ? undefined : rel.split(sep)[0];
};

/**
 * Libs are imported by name (`#libs/<name>`, package.json "imports"), from apps, tests, tools and
 * other libs alike: a relative path that enters a lib from outside it is an error. A lib's own
 * files import each other relatively.
 */
const libsByName = {
  meta: { type: 'problem', schema: [], messages: { byName: "import the {{lib}} lib by name ('#libs/{{lib}}'), not by a relative path into libs/" } },
  create(context) {
    const check = (source) => {
      if (source?.type !== 'Literal' || typeof source.value !== 'string' || !source.value.startsWith('.')) return;
      const lib = libOf(resolve(dirname(context.filename), source.value));
      if (lib !== undefined && lib !== libOf(context.filename)) context.report({ node: source, messageId: 'byName', data: { lib } });
    };
    return {
      ImportDeclaration: (node) => check(node.source),
      ExportNamedDeclaration: (node) => check(node.source),
      ExportAllDeclaration: (node) => check(node.source),
      ImportExpression: (node) => check(node.source),
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', '.tmp/**', 'coverage/**'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // NestJS injection tokens and decorators make classes with only a constructor normal.
      '@typescript-eslint/no-extraneous-class': 'off',
    },
  },
  {
    // Tests read loosely typed JSON responses; `any` there is the honest type.
    files: ['test/**/*.ts', '**/*.spec.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    plugins: { local: { rules: { 'libs-by-name': libsByName } } },
    rules: {
      'local/libs-by-name': 'error',
      // A package's dist/ is not its API: it moves between versions without notice.
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(@[^/]+/)?[^./#][^/]*/dist(/|$)', message: "import the package's public entry, not its dist/ internals" }] }],
    },
  },
);
