// The process table: <data folder>/cluster.json names every process a running cluster consists
// of. The supervisor rewrites it whenever a process starts, so whoever reads it (the guardian when
// the supervisor is gone, the next `npm start`, `npm run cluster`, the tests and the benchmark)
// sees every pid there is. Node built-ins only: it is read before npm dependencies exist.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
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

/**
 * Written to a temporary file, flushed to disk, and renamed over the old one: a reader (or a
 * machine that lost power) sees the old table or the new one, never half of one.
 */
export function writeTable(dataDir, table) {
  const file = tableFile(dataDir);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, `${JSON.stringify({ bootId: bootId(), ...table }, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export function removeTable(dataDir) {
  rmSync(tableFile(dataDir), { force: true });
}

/** This boot of the machine: a table written before a reboot names pids that mean nothing now. */
export function bootId() {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); with the boot id, a pid's identity. */
export function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

/** A table entry for a process: its pid and start time, so a later reader can tell it from a recycled pid. */
export function identity(pid) {
  return pid ? { pid, startTime: startTime(pid) } : { pid };
}

function link(path) {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The kernel shows resolved paths in /proc; compare against the resolved form of ours. */
function real(path) {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * True when `pid` runs and is the process `expect` describes; every given field must hold:
 *   cmd        a string its command line contains (an entry file, a program name);
 *   arg        a whole argument of its command line (a config file, a data folder), not a part
 *              of a longer one: /a/.data does not match /x/a/.data or /a/.data2;
 *   startTime  its start time as recorded when it was spawned (see identity());
 *   cwd        its working directory (Redis and PostgreSQL change to their data folder);
 *   stdout     where its standard output goes (the replicas' and writers' log files).
 * cwd and stdout are read from /proc/<pid>/, which another user's process (PostgreSQL's, when we
 * are root without CAP_SYS_PTRACE) does not show: unreadable counts as unknown, not as a mismatch,
 * so each caller pairs them with a check that is always readable.
 * A pid from a table or a pid file may belong to an unrelated process after a reboot or once it
 * has been recycled, or to this very process; none of those is ever taken for a cluster part.
 */
export function processAlive(pid, expect = {}) {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
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
  if (cmdline.length === 0) return false;
  if (expect.cmd !== undefined && !cmdline.includes(expect.cmd)) return false;
  if (expect.arg !== undefined && !` ${cmdline} `.includes(` ${expect.arg} `)) return false;
  if (expect.startTime !== undefined && startTime(pid) !== expect.startTime) return false;
  const differs = (path, expected) => {
    const seen = link(path);
    return seen !== undefined && seen !== real(expected) && seen !== `${real(expected)} (deleted)`;
  };
  if (expect.cwd !== undefined && differs(`/proc/${pid}/cwd`, expect.cwd)) return false;
  if (expect.stdout !== undefined && differs(`/proc/${pid}/fd/1`, expect.stdout)) return false;
  return true;
}

/** The first line of a pid file as a number (PostgreSQL's postmaster.pid has more lines). */
export function readPidFile(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // none, or removed by its server just now
  }
  const pid = Number(text.split('\n')[0]?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
