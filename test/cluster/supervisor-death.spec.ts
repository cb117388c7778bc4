import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { processAlive, readPidFile } from '../../scripts/cluster/process-table.mjs';
import { clusterProcesses, STOP_DEADLINE_MS, stopCluster } from '../../scripts/cluster/stop-cluster.mjs';
import { waitFor } from '../../scripts/lib/stack.mjs';
import { type Cluster, type ProcessTable, startCluster, steadyLoad } from '../support/cluster.js';
import { Ledger, outcomeOf, validReading, verifyLedger } from '../support/ledger.js';
import { testRunPrefix } from '../support/readings-factory.js';

/** Every process of a running cluster, with what its command line must contain while it is that process. */
function processesOf(dir: string, table: ProcessTable): { name: string; pid: number; token: string }[] {
  const pg = (sub: string) => readPidFile(join(dir, sub, 'postmaster.pid'));
  const list = [
    { name: 'guardian', pid: table.guardian.pid, token: 'guardian.mjs' },
    { name: 'nginx', pid: table.nginx.pid, token: 'nginx' },
    ...table.api.map((a) => ({ name: a.name, pid: a.pid, token: 'dist/apps/api/src/main.js' })),
    ...table.writers.map((w) => ({ name: w.name, pid: w.pid, token: 'dist/apps/writer/src/main.js' })),
    { name: 'redis', pid: table.redis.pid, token: 'redis-server' },
    { name: 'postgres primary', pid: pg('pg-primary')!, token: 'postgres' },
    { name: 'postgres replica', pid: pg('pg-replica')!, token: 'postgres' },
  ];
  for (const p of list) expect(processAlive(p.pid, p.token), `${p.name} (pid ${p.pid}) runs before the kill`).toBe(true);
  return list;
}

function ledgerOf(results: Awaited<ReturnType<typeof steadyLoad>>): Ledger {
  const ledger = new Ledger();
  for (const r of results) ledger.record({ body: r.body, valid: true, outcome: r.status === 0 ? 'indeterminate' : outcomeOf(r.status), status: r.status, id: r.id });
  return ledger;
}

/** True when the writer with that pid logged "drained" (a flushed, clean stop) in its log file. */
function writerDrained(logFile: string, pid: number): boolean {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .some((line) => line.includes(`"pid":${pid},`) && line.includes('"msg":"drained"'));
}

/** The lines PostgreSQL logs for a fast shutdown that completed, after `since` (the server's log is appended to across starts). */
function postgresStoppedFast(logFile: string, sinceIso: string): boolean {
  const since = sinceIso.replace('T', ' ').slice(0, 19);
  const lines = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.slice(0, 19) >= since);
  return lines.some((l) => l.includes('received fast shutdown request')) && lines.some((l) => l.includes('database system is shut down'));
}

describe('a supervisor that dies by SIGKILL leaves nothing running', () => {
  const clusters: Cluster[] = [];
  afterEach(async () => {
    for (const c of clusters.splice(0)) {
      await c.stop({ keepData: true });
      await stopCluster(c.dir); // whatever a failed test left
      if (!process.env.KEEP_TEST_DATA) rmSync(c.dir, { recursive: true, force: true });
    }
  });

  it('its guardian stops every part cleanly within the stop deadline, and npm start on the same data stores every acknowledged reading exactly once', async () => {
    const first = await startCluster({ api: 2, writers: 2, env: { NGINX_CLIENT_TIMEOUT: '2s' } });
    clusters.push(first);
    const table = first.table();
    expect(table.stopDeadlineMs).toBe(STOP_DEADLINE_MS);
    const procs = processesOf(first.dir, table);
    const prefix = testRunPrefix('sigkill-supervisor');
    const load = steadyLoad(first.url, 100, 4_000, (i) => validReading(prefix, i));
    await sleep(1_500);
    const killedAt = new Date();
    process.kill(table.supervisor.pid, 'SIGKILL');
    const results = await load;

    // A liveness bound (the documented worst case), not a speed claim.
    await waitFor('every process of the cluster to exit', () => procs.every((p) => !processAlive(p.pid, p.token)), STOP_DEADLINE_MS, 100);
    console.log(`supervisor SIGKILLed: the guardian stopped ${procs.length} processes in ${Date.now() - killedAt.getTime()} ms (bound ${STOP_DEADLINE_MS} ms)`);
    expect(clusterProcesses(first.dir)).toEqual([]);
    const guardianLog = readFileSync(join(first.dir, 'logs', 'guardian.log'), 'utf8');
    expect(guardianLog).toContain(`the supervisor (pid ${table.supervisor.pid}) has gone`);
    expect(guardianLog).toMatch(/cluster stopped in \d+ ms/);
    // Cleanly: the writers flushed, PostgreSQL shut down fast, Redis exited on SIGTERM with its AOF.
    for (const w of table.writers) expect(writerDrained(w.log, w.pid), `${w.name} drained`).toBe(true);
    expect(postgresStoppedFast(join(first.dir, 'logs', 'pg-primary.log'), killedAt.toISOString())).toBe(true);
    expect(postgresStoppedFast(join(first.dir, 'logs', 'pg-replica.log'), killedAt.toISOString())).toBe(true);
    expect(readFileSync(join(first.dir, 'logs', 'redis.log'), 'utf8')).toContain('ready to exit, bye bye');
    expect(existsSync(join(first.dir, 'redis', 'appendonlydir'))).toBe(true);
    expect(existsSync(join(first.dir, 'cluster.json'))).toBe(false);

    const ledger = ledgerOf(results);
    expect(ledger.acknowledged().length).toBeGreaterThan(100);
    const second = await startCluster({ api: 1, writers: 1, dir: first.dir, ports: first.ports });
    clusters.push(second);
    const v = await verifyLedger(second.table().postgres.primary, ledger, prefix);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.valueMismatch).toEqual([]);
    expect(v.unexpectedRows).toBe(0);
  });

  it('with its guardian killed too, the next npm start stops what was left, cleanly, and starts afresh on the same data', async () => {
    const first = await startCluster({ api: 2, writers: 1, env: { NGINX_CLIENT_TIMEOUT: '2s' } });
    clusters.push(first);
    const table = first.table();
    const procs = processesOf(first.dir, table).filter((p) => p.name !== 'guardian');
    const prefix = testRunPrefix('sigkill-all');
    const load = steadyLoad(first.url, 100, 3_000, (i) => validReading(prefix, i));
    await sleep(1_000);
    process.kill(table.supervisor.pid, 'SIGKILL');
    process.kill(table.guardian.pid, 'SIGKILL');
    const results = await load;
    // Nothing stopped them: the cluster runs on without a supervisor (and kept taking readings).
    for (const p of procs) expect(processAlive(p.pid, p.token), `${p.name} still runs`).toBe(true);
    const ledger = ledgerOf(results);
    expect(ledger.acknowledged().length).toBe(results.length);

    const restartedAt = new Date();
    const second = await startCluster({ api: 1, writers: 1, dir: first.dir, ports: first.ports });
    clusters.push(second);
    const log = readFileSync(second.logFile, 'utf8');
    expect(log).toContain(`found a cluster left by an earlier run (supervisor pid ${table.supervisor.pid} is gone)`);
    for (const p of procs) expect(processAlive(p.pid, p.token), `${p.name} of the earlier run stopped`).toBe(false);
    expect(writerDrained(table.writers[0]!.log, table.writers[0]!.pid)).toBe(true);
    expect(postgresStoppedFast(join(first.dir, 'logs', 'pg-primary.log'), restartedAt.toISOString())).toBe(true);

    const v = await verifyLedger(second.table().postgres.primary, ledger, prefix);
    expect(v.lost).toEqual([]);
    expect(v.duplicated).toEqual([]);
    expect(v.stored).toBe(v.acknowledged);
    expect(v.unexpectedRows).toBe(0);
  });

  it('refuses to start a second supervisor on a data folder whose supervisor runs, and leaves that cluster alone', async () => {
    const first = await startCluster({ api: 1, writers: 1 });
    clusters.push(first);
    const again = spawnSync(process.execPath, ['scripts/start.mjs', '--data-dir', first.dir, '--port', String(first.ports.nginx)], { encoding: 'utf8', timeout: 60_000 });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`meter-intake is already running on this data folder (supervisor pid ${first.table().supervisor.pid}`);
    const status = await first.status();
    expect(status.api.map((a) => a.health)).toEqual(['ready']);
    expect(status.writers.map((w) => w.health)).toEqual(['ready']);
  });
});
