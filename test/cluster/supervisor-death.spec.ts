import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type Expected, processAlive, readPidFile, readTable } from '../../scripts/cluster/process-table.mjs';
import { clusterProcesses, STOP_DEADLINE_MS, stopCluster } from '../../scripts/cluster/stop-cluster.mjs';
import { freePort, waitFor } from '../../scripts/lib/stack.mjs';
import { type Cluster, control, type ProcessTable, startCluster, steadyLoad } from '../support/cluster.js';
import { Ledger, outcomeOf, validReading, verifyLedger } from '../support/ledger.js';
import { testRunPrefix } from '../support/readings-factory.js';

/** A liveness bound for a test that waits out a whole stop (the documented worst case) and a start. */
const STOP_TEST_TIMEOUT_MS = STOP_DEADLINE_MS + 180_000;

/** Every process of a running cluster, with what it must be (the checks processAlive makes). */
function processesOf(dir: string, table: ProcessTable): { name: string; pid: number; expect: Expected }[] {
  const pg = (sub: string) => ({ pid: readPidFile(join(dir, sub, 'postmaster.pid'))!, expect: { cmd: 'postgres', arg: join(dir, sub), cwd: join(dir, sub) } });
  const list = [
    { name: 'guardian', pid: table.guardian.pid, expect: { cmd: 'guardian.mjs', startTime: table.guardian.startTime } },
    { name: 'nginx', pid: table.nginx.pid, expect: { cmd: table.nginx.config, startTime: table.nginx.startTime } },
    ...table.api.map((a) => ({ name: a.name, pid: a.pid, expect: { cmd: 'dist/apps/api/src/main.js', startTime: a.startTime, stdout: a.log } })),
    ...table.writers.map((w) => ({ name: w.name, pid: w.pid, expect: { cmd: 'dist/apps/writer/src/main.js', startTime: w.startTime, stdout: w.log } })),
    { name: 'redis', pid: table.redis.pid, expect: { cmd: 'redis-server', cwd: join(dir, 'redis') } },
    { name: 'postgres primary', ...pg('pg-primary') },
    { name: 'postgres replica', ...pg('pg-replica') },
  ];
  for (const p of list) expect(processAlive(p.pid, p.expect), `${p.name} (pid ${p.pid}) runs before the kill`).toBe(true);
  return list;
}

/**
 * Every process whose working directory, standard output or standard error lies inside `dir`,
 * found by scanning /proc rather than by any list the cluster keeps: what a stop missed shows up
 * here even if no table or pid file ever named it. This test process itself is left out.
 */
function processesInside(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)) {
    for (const link of ['cwd', 'fd/1', 'fd/2']) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/${link}`);
      } catch {
        continue; // gone meanwhile, or not ours to read
      }
      if (target === dir || target.startsWith(`${dir}/`)) {
        let cmd = '';
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
        } catch {
          // gone meanwhile
        }
        if (cmd) found.push(`${pid} (${link} -> ${target}): ${cmd}`);
        break;
      }
    }
  }
  return found;
}

function ledgerOf(results: Awaited<ReturnType<typeof steadyLoad>>): Ledger {
  const ledger = new Ledger();
  for (const r of results) ledger.record({ body: r.body, valid: true, outcome: r.status === 0 ? 'indeterminate' : outcomeOf(r.status), status: r.status, id: r.id });
  return ledger;
}

/** When the writer with that pid logged "drained" (its buffer flushed, a clean stop), or undefined. */
function writerDrainedAt(logFile: string, pid: number): number | undefined {
  const line = readFileSync(logFile, 'utf8')
    .split('\n')
    .find((l) => l.includes(`"pid":${pid},`) && l.includes('"msg":"drained"'));
  return line ? Date.parse((JSON.parse(line) as { time: string }).time) : undefined;
}

/** When PostgreSQL logged a fast shutdown request after `since`, if it also logged the shutdown complete (log times are UTC). */
function postgresFastShutdownAt(logFile: string, since: number): number | undefined {
  const lines = readFileSync(logFile, 'utf8')
    .split('\n')
    .map((l) => ({ l, t: Date.parse(`${l.slice(0, 23).replace(' ', 'T')}Z`) }))
    .filter(({ t }) => t >= since - 1_000);
  const request = lines.find(({ l }) => l.includes('received fast shutdown request'));
  return request && lines.some(({ l }) => l.includes('database system is shut down')) ? request.t : undefined;
}

/** When Redis logged its SIGTERM shutdown ("User requested shutdown"), if it then exited cleanly ("bye bye"); Redis logs UTC here (TZ=UTC). */
function redisShutdownAt(logFile: string, since: number): number | undefined {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const lines = readFileSync(logFile, 'utf8').split('\n');
  let at: number | undefined;
  for (const l of lines) {
    const m = /(\d{2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2})\.(\d{3}) # User requested shutdown/.exec(l);
    if (m) {
      const t = Date.UTC(Number(m[3]), months.indexOf(m[2]!), Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7]));
      if (t >= since - 1_000) at = t;
    }
  }
  return at !== undefined && lines.some((l) => l.includes('ready to exit, bye bye')) ? at : undefined;
}

describe('a supervisor that dies by SIGKILL leaves nothing running', () => {
  const clusters: Cluster[] = [];
  afterEach(async () => {
    // A second start runs on the first one's folder: stop every cluster (latest first) before
    // removing any folder, or the removal races the later cluster's writes into it.
    const stopped = clusters.splice(0).reverse();
    for (const c of stopped) {
      await c.stop({ keepData: true });
      await stopCluster(c.dir); // whatever a failed test left
    }
    if (!process.env.KEEP_TEST_DATA) for (const dir of new Set(stopped.map((c) => c.dir))) rmSync(dir, { recursive: true, force: true });
  }, STOP_TEST_TIMEOUT_MS);

  it(
    'its guardian stops every part cleanly and in order within the stop deadline, and npm start on the same data stores every acknowledged reading exactly once',
    async () => {
      const first = await startCluster({ api: 2, writers: 2, env: { NGINX_CLIENT_TIMEOUT: '2s' } });
      clusters.push(first);
      const table = first.table();
      expect(table.stopDeadlineMs).toBe(STOP_DEADLINE_MS);
      const procs = processesOf(first.dir, table);
      const prefix = testRunPrefix('sigkill-supervisor');
      const load = steadyLoad(first.url, 100, 4_000, (i) => validReading(prefix, i));
      await sleep(1_500);
      const killedAt = Date.now();
      process.kill(table.supervisor.pid, 'SIGKILL');
      const results = await load;

      // A liveness bound (the documented worst case), not a speed claim.
      await waitFor('every process of the cluster to exit', () => procs.every((p) => !processAlive(p.pid, p.expect)), STOP_DEADLINE_MS, 100);
      console.log(`supervisor SIGKILLed: the guardian stopped ${procs.length} processes in ${Date.now() - killedAt} ms (bound ${STOP_DEADLINE_MS} ms)`);
      expect(clusterProcesses(first.dir)).toEqual([]);
      await waitFor('the guardian to exit', () => !processAlive(table.guardian.pid, { cmd: 'guardian.mjs', startTime: table.guardian.startTime }), 10_000, 20);
      expect(processesInside(first.dir)).toEqual([]);
      const guardianLog = readFileSync(join(first.dir, 'logs', 'guardian.log'), 'utf8');
      expect(guardianLog).toContain(`the supervisor (pid ${table.supervisor.pid}) has gone`);
      expect(guardianLog).toMatch(/cluster stopped in \d+ ms/);
      // Cleanly and in order: every writer drained (flushed its buffer) before Redis got its
      // SIGTERM (it then writes its AOF and exits), and Redis before PostgreSQL's fast shutdown.
      const drained = table.writers.map((w) => writerDrainedAt(w.log, w.pid));
      expect(drained.every((t) => t !== undefined), `every writer logged "drained": ${JSON.stringify(drained)}`).toBe(true);
      const redisAt = redisShutdownAt(join(first.dir, 'logs', 'redis.log'), killedAt);
      const replicaAt = postgresFastShutdownAt(join(first.dir, 'logs', 'pg-replica.log'), killedAt);
      const primaryAt = postgresFastShutdownAt(join(first.dir, 'logs', 'pg-primary.log'), killedAt);
      expect({ redisAt, replicaAt, primaryAt }).toEqual({ redisAt: expect.any(Number), replicaAt: expect.any(Number), primaryAt: expect.any(Number) });
      expect(Math.max(...(drained as number[]))).toBeLessThanOrEqual(redisAt!);
      expect(redisAt!).toBeLessThanOrEqual(replicaAt!);
      expect(replicaAt!).toBeLessThanOrEqual(primaryAt!);
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
    },
    STOP_TEST_TIMEOUT_MS,
  );

  it(
    'with its guardian killed too, the next npm start stops what was left, cleanly, and starts afresh on the same data',
    async () => {
      const first = await startCluster({ api: 2, writers: 1, env: { NGINX_CLIENT_TIMEOUT: '2s' } });
      clusters.push(first);
      const table = first.table();
      const procs = processesOf(first.dir, table).filter((p) => p.name !== 'guardian');
      const prefix = testRunPrefix('sigkill-all');
      const load = steadyLoad(first.url, 100, 3_000, (i) => validReading(prefix, i));
      await sleep(1_000);
      // The guardian must be gone before the supervisor is: otherwise it may already have begun
      // its stop when its own SIGKILL lands. A stopped supervisor holds its end of the pipe open.
      process.kill(table.supervisor.pid, 'SIGSTOP');
      process.kill(table.guardian.pid, 'SIGKILL');
      await waitFor('the guardian to be gone', () => !processAlive(table.guardian.pid, { cmd: 'guardian.mjs', startTime: table.guardian.startTime }), 10_000, 20);
      process.kill(table.supervisor.pid, 'SIGKILL');
      const results = await load;
      // Nothing stopped them: the cluster runs on without a supervisor (and kept taking readings).
      for (const p of procs) expect(processAlive(p.pid, p.expect), `${p.name} still runs`).toBe(true);
      const ledger = ledgerOf(results);
      expect(ledger.acknowledged().length).toBe(results.length);

      const restartedAt = Date.now();
      const second = await startCluster({ api: 1, writers: 1, dir: first.dir, ports: first.ports });
      clusters.push(second);
      const log = readFileSync(second.logFile, 'utf8');
      expect(log).toContain(`found a cluster left by an earlier run (supervisor pid ${table.supervisor.pid} is gone)`);
      for (const p of procs) expect(processAlive(p.pid, p.expect), `${p.name} of the earlier run stopped`).toBe(false);
      expect(writerDrainedAt(table.writers[0]!.log, table.writers[0]!.pid)).toEqual(expect.any(Number));
      expect(postgresFastShutdownAt(join(first.dir, 'logs', 'pg-primary.log'), restartedAt)).toEqual(expect.any(Number));

      const v = await verifyLedger(second.table().postgres.primary, ledger, prefix);
      expect(v.lost).toEqual([]);
      expect(v.duplicated).toEqual([]);
      expect(v.stored).toBe(v.acknowledged);
      expect(v.unexpectedRows).toBe(0);
    },
    STOP_TEST_TIMEOUT_MS,
  );

  it('refuses to start a second supervisor on a data folder whose supervisor runs, and leaves that cluster alone', { timeout: 240_000 }, async () => {
    const first = await startCluster({ api: 1, writers: 1 });
    clusters.push(first);
    const again = spawnSync(process.execPath, ['scripts/start.mjs', '--data-dir', first.dir, '--port', String(first.ports.nginx)], { encoding: 'utf8', timeout: 60_000 });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`meter-intake is already running on this data folder (supervisor pid ${first.table().supervisor.pid}`);
    const status = await first.status();
    expect(status.api.map((a) => a.health)).toEqual(['ready']);
    expect(status.writers.map((w) => w.health)).toEqual(['ready']);
  });

  it('of two npm starts begun at once on one data folder, one runs the cluster and the other is refused', { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mi-cluster-'));
    const env = { ...process.env, PG_PORT: String(await freePort()), PG_REPLICA_PORT: String(await freePort()), REDIS_PORT: String(await freePort()), LOG_REQUESTS: 'false' };
    const port = String(await freePort());
    const starts = [0, 1].map((i) => {
      const logFile = join(dir, `supervisor-${i}.log`);
      const out = openSync(logFile, 'w');
      const child = spawn(process.execPath, ['scripts/start.mjs', '--data-dir', dir, '--port', port, '--api', '1', '--writers', '1'], { env, stdio: ['ignore', out, out] });
      const exited = new Promise<number | string | null>((r) => child.once('exit', (code, signal) => r(code ?? signal)));
      return { child, logFile, exited };
    });
    try {
      const refused = await Promise.race(starts.map((s) => s.exited.then(() => s)));
      const running = starts.find((s) => s !== refused)!;
      expect(await refused.exited).toBe(1);
      expect(readFileSync(refused.logFile, 'utf8')).toContain(`meter-intake is already running on this data folder (supervisor pid ${running.child.pid})`);
      await waitFor('the other to be ready', () => {
        if (running.child.exitCode !== null) throw Object.assign(new Error(`it exited too; see ${running.logFile}`), { fatal: true });
        return readFileSync(running.logFile, 'utf8').includes('ready on');
      }, 120_000, 200);
      const status = await control<ProcessTable>(join(dir, 'supervisor.sock'), 'GET', '/status');
      expect(status.supervisor.pid).toBe(running.child.pid);
      expect(status.api.map((a) => a.health)).toEqual(['ready']);
      running.child.kill('SIGTERM');
      expect(await running.exited).toBe(0);
    } finally {
      for (const s of starts) if (s.child.exitCode === null) s.child.kill('SIGKILL');
      await stopCluster(dir);
      if (!process.env.KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a stop requested while the cluster is still starting', () => {
  it('Ctrl-C during start-up stops everything that was started, cleanly, and never reports ready', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mi-cluster-'));
    const ports = { PG_PORT: await freePort(), PG_REPLICA_PORT: await freePort(), REDIS_PORT: await freePort() };
    const logFile = join(dir, 'supervisor.log');
    const out = openSync(logFile, 'w');
    const child = spawn(process.execPath, ['scripts/start.mjs', '--data-dir', dir, '--port', String(await freePort()), '--api', '2', '--writers', '2'], {
      env: { ...process.env, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])), LOG_REQUESTS: 'false' },
      stdio: ['ignore', out, out],
    });
    const exited = new Promise<number | string | null>((r) => child.once('exit', (code, signal) => r(code ?? signal)));
    try {
      // The moment the first writer has been spawned: the data services are up, the parts are starting.
      const table: ProcessTable = await waitFor('a writer to be spawned', () => {
        if (child.exitCode !== null) throw Object.assign(new Error(`supervisor exited early; see ${logFile}`), { fatal: true });
        const t = readTable(dir) as ProcessTable | undefined;
        return t?.writers?.length ? t : undefined;
      }, 120_000, 20);
      // Until it is up, the control socket scales and stops nothing.
      await expect(control(join(dir, 'supervisor.sock'), 'POST', '/scale', { api: 1 })).rejects.toThrow(/^503: .*still starting/);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      const log = readFileSync(logFile, 'utf8');
      expect(log).toContain('SIGINT: stopping as soon as the start-up step in progress has ended');
      expect(log).toContain('stopped cleanly');
      expect(log).not.toContain('ready on');
      // Nothing of it runs: not the parts the table named then, not anything it started afterwards.
      for (const w of table.writers) expect(processAlive(w.pid, { cmd: 'dist/apps/writer/src/main.js', startTime: w.startTime }), w.name).toBe(false);
      // The guardian sees the supervisor's pipe close only once it has exited, then finds no table and exits too.
      await waitFor('the guardian to exit', () => !processAlive(table.guardian.pid, { cmd: 'guardian.mjs', startTime: table.guardian.startTime }), 10_000, 20);
      expect(clusterProcesses(dir)).toEqual([]);
      expect(processesInside(dir)).toEqual([]);
      expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await stopCluster(dir);
      if (!process.env.KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    }
  }, STOP_TEST_TIMEOUT_MS);
});

