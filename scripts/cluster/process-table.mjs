// The process table: <data folder>/cluster.json names every process a running cluster consists
// of. The supervisor rewrites it whenever a process starts, so whoever reads it (the guardian when
// the supervisor is gone, the next `npm start`, `npm run cluster`, the tests and the benchmark)
// sees every pid there is. Node built-ins only: it is read before npm dependencies exist.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function tableFile(dataDir) {
  return join(dataDir, 'cluster.json');
}

/** The table, or undefined when there is none (or it cannot be parsed: a table is only ever replaced whole). */
export function readTable(dataDir) {
  const file = tableFile(dataDir);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Written to a temporary file and renamed over the old one, so a reader never sees half a table. */
export function writeTable(dataDir, table) {
  const file = tableFile(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(table, null, 2)}\n`);
  renameSync(tmp, file);
}

export function removeTable(dataDir) {
  rmSync(tableFile(dataDir), { force: true });
}

/**
 * True when `pid` runs and its command line contains `token` (an entry file or a program name).
 * The token guards against a recycled pid: after a reboot or a long pause the number in a table
 * or a pid file may belong to an unrelated process, which must never be signalled.
 */
export function processAlive(pid, token) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone. EPERM: it exists but belongs to another user, so it is not one of ours.
    return false;
  }
  let cmdline;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return false; // exited between the two checks
  }
  // A zombie (exited, not yet reaped by its parent) has an empty command line: it is gone.
  return cmdline.length > 0 && cmdline.includes(token);
}

/** The first line of a pid file as a number (PostgreSQL's postmaster.pid has more lines). */
export function readPidFile(file) {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
