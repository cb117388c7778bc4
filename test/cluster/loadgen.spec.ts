import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testKey } from '../support/auth.js';
import { type Cluster, startCluster } from '../support/cluster.js';
import { withDb } from '../support/db.js';

const run = promisify(execFile);

interface Summary {
  runId: string;
  requests: number;
  readings: { acknowledged: number; rejected: number; indeterminate: number; invalidSent: number; invalidAcknowledged: number };
  verify?: { ok: boolean; acknowledged: number; stored: number; lost: string[]; duplicated: string[]; unexpected: string[] };
}

async function loadgen(args: string[]): Promise<{ code: number; summary: Summary; stderr: string }> {
  try {
    // The key through the environment, as MI_API_KEY (the `verify` command needs none).
    const { stdout, stderr } = await run(process.execPath, ['dist/apps/loadgen/src/main.js', ...args, '--json'], { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, MI_API_KEY: testKey() } });
    return { code: 0, summary: JSON.parse(stdout) as Summary, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, summary: JSON.parse(e.stdout) as Summary, stderr: e.stderr };
  }
}

describe('the load generator against the cluster', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ api: 2, writers: 1 });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('runs a short open-model load with --verify: zero loss, zero duplicates, every invalid payload rejected; the checker sees planted loss and duplicates', async () => {
    const primary = cluster.table().postgres.primary;
    const ledgerFile = join(cluster.dir, 'ledger.jsonl');
    const { code, summary, stderr } = await loadgen([
      '--url', cluster.url, '--rate', '150', '--duration', '4', '--batch-share', '0.1', '--batch-size', '20',
      '--invalid', '0.05', '--resend', '0.02', '--verify', '--database-url', primary, '--ledger', ledgerFile, '--seed', '7',
    ]);
    expect(code, stderr).toBe(0);
    expect(summary.requests).toBe(600);
    expect(summary.readings.invalidSent).toBeGreaterThan(0);
    expect(summary.readings.invalidAcknowledged).toBe(0);
    expect(summary.readings.indeterminate).toBe(0);
    expect(summary.readings.rejected).toBe(summary.readings.invalidSent);
    expect(summary.verify).toMatchObject({ ok: true, lost: [], duplicated: [], unexpected: [] });
    expect(summary.verify!.stored).toBe(summary.readings.acknowledged);

    // Negative control: delete three stored readings and copy two under new ids.
    const planted = await withDb(primary, async (c) => {
      const { rows } = await c.query<{ id: string }>(`SELECT id::text FROM readings WHERE meter_id LIKE $1 ORDER BY id LIMIT 5`, [`lg-${summary.runId}-%`]);
      const deleted = rows.slice(0, 3).map((r) => r.id);
      await c.query('DELETE FROM readings WHERE id = ANY($1::uuid[])', [deleted]);
      const copies: string[] = [];
      for (const r of rows.slice(3)) {
        const { rows: inserted } = await c.query<{ id: string }>(
          `INSERT INTO readings (id, meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at)
           SELECT gen_random_uuid(), meter_id, account_id, period, read_at, t1, t2, t3, source, flags, received_at FROM readings WHERE id = $1
           RETURNING id::text`,
          [r.id],
        );
        copies.push(inserted[0]!.id);
      }
      return { deleted, copies };
    });
    const check = await loadgen(['verify', '--ledger', ledgerFile, '--database-url', primary]);
    expect(check.code).toBe(1);
    const report = (check.summary as unknown as { verify: NonNullable<Summary['verify']> }).verify;
    expect([...report.lost].sort()).toEqual([...planted.deleted].sort());
    expect([...report.duplicated].sort()).toEqual([...planted.copies].sort());
    expect(report.unexpected).toEqual([]);
  });

  it('refuses to run without a working client key, in one line, instead of sending a load of 401s', async () => {
    for (const [key, why] of [['', 'no client key given'], ['mik_' + 'A'.repeat(43), 'the key was refused (401']] as const) {
      const err = await run(process.execPath, ['dist/apps/loadgen/src/main.js', '--url', cluster.url, '--rate', '10', '--duration', '1'], { env: { ...process.env, MI_API_KEY: key } }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(err.code).toBe(1);
      expect(err.stderr.trim().split('\n')).toHaveLength(1);
      expect(err.stderr).toContain(why);
      expect(err.stderr).toContain('npm run clients -- create');
    }
  });
});
