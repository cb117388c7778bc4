import { describe, expect, it } from 'vitest';

// Composition happens in each main.ts: importing a module file must create nothing (no config
// read, no logger, no metrics, no connection), so tests and tools can import it freely.
describe('module files', () => {
  it('read no configuration when imported, even with an invalid environment, and export only their module classes', async () => {
    const saved = process.env.DB_POOL_SIZE;
    process.env.DB_POOL_SIZE = 'not a number';
    try {
      const api = await import('./app.module.js');
      const writer = await import('../../writer/src/writer.module.js');
      expect(Object.keys(api).sort()).toEqual(['AppModule']);
      expect(Object.keys(writer).sort()).toEqual(['WriterModule']);
      expect(typeof api.AppModule.forRoot).toBe('function');
      expect(typeof writer.WriterModule.forRoot).toBe('function');
    } finally {
      if (saved === undefined) delete process.env.DB_POOL_SIZE;
      else process.env.DB_POOL_SIZE = saved;
    }
  });
});
