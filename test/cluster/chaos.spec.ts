// The randomised fault run (scripts/chaos.mjs, `npm run chaos`) in its short form: 2 minutes with
// a fixed seed (the schedule is the same on every run; `npm run chaos -- --seed N` explores
// others), and its negative control, which must report the loss a Redis without AOF causes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SEED = 20261204;

function chaos(args: string[]): { status: number | null; out: string; report: { schedule: { kind: string; error?: string }[]; loadgen?: { verify?: { lost: string[]; ok: boolean } } } } {
  const file = join(mkdtempSync(join(tmpdir(), 'mi-chaos-test-')), 'report.json');
  const r = spawnSync(process.execPath, ['scripts/chaos.mjs', ...args, '--out', file], { encoding: 'utf8', timeout: 600_000 });
  const out = `${r.stdout}${r.stderr}`;
  console.log(out.split('\n').filter((l) => l.startsWith('[chaos')).join('\n'));
  return { status: r.status, out, report: JSON.parse(readFileSync(file, 'utf8')) };
}

describe('randomised fault run', () => {
  it('2 minutes of load with 12 seeded faults: the ledger holds (nothing acknowledged lost or doubled, nothing rejected stored)', () => {
    const { status, out, report } = chaos(['--seed', String(SEED), '--duration', '120', '--faults', '12', '--rate', '60']);
    expect(out).toContain(`seed ${SEED}`);
    expect(status).toBe(0);
    expect(out).toContain(`PASSED (seed ${SEED})`);
    expect(report.schedule).toHaveLength(12);
    expect(report.schedule.filter((f) => f.error)).toEqual([]);
    expect(report.loadgen?.verify?.ok).toBe(true);
  }, 600_000);

  it('negative control: with the AOF off and Redis killed, the same checker reports acknowledged readings lost', () => {
    const { status, report } = chaos(['--seed', String(SEED), '--duration', '20', '--rate', '50', '--negative-control']);
    expect(status).toBe(0);
    expect(report.loadgen?.verify?.ok).toBe(false);
    expect(report.loadgen?.verify?.lost.length).toBeGreaterThan(0);
  }, 300_000);
});
