import swc from 'unplugin-swc';
import { configDefaults, defineConfig } from 'vitest/config';

// SWC, not esbuild: NestJS dependency injection needs emitDecoratorMetadata, which esbuild does not emit.
// `#libs/<name>` resolves to the TypeScript source under the 'source' condition (package.json
// "imports"); the other conditions are Vite's defaults for code that runs on Node.
const conditions = ['source', 'module', 'node', 'development|production'];

export default defineConfig({
  ssr: { resolve: { conditions } },
  plugins: [swc.vite({ module: { type: 'es6' }, jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: '.tmp/vitest-results.json' },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['libs/**/*.spec.ts', 'apps/**/*.spec.ts', 'bench/**/*.spec.mjs', 'scripts/**/*.spec.mjs'], environment: 'node' },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.spec.ts'],
          exclude: [...configDefaults.exclude, 'test/cockroach/**'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          // One real stack is shared; files run one after another so their loads do not distort each other.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          // The end-to-end suite against CockroachDB: runs when COCKROACH_URL or a cockroach binary
          // is available; otherwise its tests are skipped and the run says so (never counted as passed).
          name: 'cockroach',
          include: ['test/cockroach/**/*.spec.ts'],
          environment: 'node',
          globalSetup: ['test/cockroach/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      // docker-compose.postgres.yml for real (test/compose): minutes long and root on first use,
      // so only `npm run test:compose` selects it (scripts/test.mjs sets MI_TEST_COMPOSE=1);
      // plain `vitest run` and `npm test` leave it out.
      ...(process.env.MI_TEST_COMPOSE === '1'
        ? [
            {
              extends: true as const,
              test: {
                name: 'compose',
                include: ['test/compose/**/*.spec.mjs'],
                environment: 'node',
                globalSetup: ['test/compose/global-setup.mjs'],
                fileParallelism: false,
                testTimeout: 15 * 60_000,
                hookTimeout: 30 * 60_000,
              },
            },
          ]
        : []),
    ],
  },
});
