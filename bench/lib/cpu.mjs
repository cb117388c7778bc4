// CPU seconds per cluster component, from /proc: each component is a set of root pids and
// counts its whole process tree, plus what its exited children left in cutime/cstime (PostgreSQL
// backends, nginx workers replaced on reload).
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function readStat(pid) {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return { pid: Number(pid), ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

/** Every process's CPU ticks and parent, read once. */
export function processSnapshot() {
  const byPid = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(name);
    if (s) byPid.set(s.pid, s);
  }
  return byPid;
}

/** CPU seconds used so far by the tree under `rootPid`, counting the root's reaped children. */
export function treeCpuSeconds(snapshot, rootPid) {
  const root = snapshot.get(rootPid);
  if (!root) return 0;
  const childrenOf = new Map();
  for (const s of snapshot.values()) {
    if (!childrenOf.has(s.ppid)) childrenOf.set(s.ppid, []);
    childrenOf.get(s.ppid).push(s);
  }
  let ticks = root.children;
  const stack = [root];
  while (stack.length) {
    const s = stack.pop();
    ticks += s.self;
    stack.push(...(childrenOf.get(s.pid) ?? []));
  }
  return ticks / TICKS_PER_SECOND;
}

/** The CPU seconds of each named component (name -> root pids) at this moment. */
export function componentCpu(components) {
  const snapshot = processSnapshot();
  const out = {};
  for (const [name, pids] of Object.entries(components)) out[name] = pids.reduce((sum, pid) => sum + treeCpuSeconds(snapshot, pid), 0);
  return out;
}

/** Difference of two componentCpu readings, rounded to 10 ms. */
export function cpuDelta(before, after) {
  const out = {};
  for (const name of Object.keys(after)) out[name] = Math.round(((after[name] ?? 0) - (before[name] ?? 0)) * 100) / 100;
  return out;
}
