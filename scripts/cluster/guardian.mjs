// The guardian: a small process the supervisor (`npm start`) starts before anything else, in a
// session of its own, so that a signal to the supervisor's process group or terminal (Ctrl-C, a
// closed terminal, a process manager's SIGTERM-then-SIGKILL) does not reach it. It holds the read
// end of a pipe whose only writer is the supervisor; the kernel closes that pipe however the
// supervisor ends, SIGKILL included. When it closes:
//   - after a clean stop, the supervisor has already stopped everything and removed the process
//     table: the guardian finds nothing to do and exits;
//   - if the table names another supervisor (a new `npm start` on the same folder, begun right
//     after a clean stop), that cluster is not its business: it exits;
//   - otherwise it stops what the process table and the pid files name, in the supervisor's order
//     (stop-cluster.mjs), removes the table and exits.
// Usage (by the supervisor only): node scripts/cluster/guardian.mjs <data folder> <supervisor pid> <its start time>
// Node built-ins only, and no work while the supervisor lives: it just waits on the pipe.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { removeTable, readTable } from './process-table.mjs';
import { clusterProcesses, STOP_DEADLINE_MS, stopCluster } from './stop-cluster.mjs';

const dataDir = process.argv[2];
const supervisorPid = Number(process.argv[3]);
const supervisorStartTime = Number(process.argv[4]);
if (!dataDir || !Number.isInteger(supervisorPid)) {
  console.error('usage: node scripts/cluster/guardian.mjs <data folder> <supervisor pid> <its start time> (started by npm start, not by hand)');
  process.exit(2);
}
const log = (message) => process.stderr.write(`[guardian ${new Date().toISOString()}] ${message}\n`);

// Terminal and group signals do not reach this session; a signal aimed at the guardian itself
// (kill <pid>) must not leave the cluster unguarded halfway through a stop, so it is only logged.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => log(`${signal} ignored: the guardian exits when the supervisor has gone and the cluster has stopped`));

let started = false;
async function supervisorGone(reason) {
  if (started) return;
  started = true;
  const table = readTable(dataDir);
  if (!table) {
    // The supervisor stopped cleanly: it removes the table as its very last step.
    process.exit(0);
  }
  if (table.supervisor?.pid !== supervisorPid || (supervisorStartTime && table.supervisor?.startTime !== supervisorStartTime)) {
    log(`the process table names supervisor pid ${table.supervisor?.pid}, not ${supervisorPid}: a later run's cluster; leaving it alone`);
    process.exit(0);
  }
  const procs = clusterProcesses(dataDir);
  log(`the supervisor (pid ${table.supervisor?.pid}) has gone (${reason}); stopping what it left: ${procs.map((p) => `${p.name} (${p.pid})`).join(', ') || 'nothing runs'} (bound ${STOP_DEADLINE_MS / 1000} s)`);
  const t0 = Date.now();
  await stopCluster(dataDir, log);
  const left = clusterProcesses(dataDir);
  if (left.length) {
    log(`still running after the stop: ${left.map((p) => `${p.name} (${p.pid})`).join(', ')}; the next npm start stops them`);
    process.exit(1);
  }
  removeTable(dataDir);
  rmSync(join(dataDir, 'supervisor.sock'), { force: true });
  log(`cluster stopped in ${Date.now() - t0} ms`);
  process.exit(0);
}

process.stdin.on('data', () => undefined); // the supervisor never writes; reading keeps 'end' coming
const gone = (reason) =>
  supervisorGone(reason).catch((err) => {
    log(`the stop failed: ${err.stack ?? err.message}; the next npm start stops what is left`);
    process.exit(1);
  });
process.stdin.on('end', () => void gone('its pipe closed'));
process.stdin.on('close', () => void gone('its pipe closed'));
process.stdin.on('error', (err) => void gone(`pipe error ${err.code ?? err.message}`));
log(`watching the supervisor of ${dataDir}`);
