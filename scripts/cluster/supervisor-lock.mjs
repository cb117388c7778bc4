import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { identity } from './process-table.mjs';

// One supervisor per data folder, from here on. The lock is a Unix socket in Linux's abstract
// namespace, named after the folder: binding it is atomic, and the kernel releases it the moment
// its holder exits, however it exits, so there is no stale lock to judge (a lock file would need
// a check-then-take that two starts begun at once can both pass). Whoever connects to it is told
// the holder's pid. Without it two `npm start`s could both get past the checks below and stop
// each other's servers.
export async function takeSupervisorLock(dataDir) {
  mkdirSync(dataDir, { recursive: true });
  const lockName = `\0meter-intake-supervisor:${createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 40)}`;
  const lock = createServer((socket) => socket.end(JSON.stringify(identity(process.pid))));
  const locked = await new Promise((resolveLock) => {
    lock.once('error', resolveLock);
    lock.listen(lockName, () => resolveLock(true));
  });
  if (locked !== true) {
    if (locked.code !== 'EADDRINUSE') throw locked;
    const holder = await new Promise((resolveHolder) => {
      const socket = connect(lockName);
      let data = '';
      socket.setTimeout(2_000, () => socket.destroy());
      socket.on('data', (chunk) => (data += chunk));
      socket.on('close', () => {
        try {
          resolveHolder(JSON.parse(data));
        } catch {
          resolveHolder(undefined);
        }
      });
      socket.on('error', () => undefined);
    });
    const pid = holder?.pid ?? '?';
    console.error(`meter-intake is already running on this data folder (supervisor pid ${pid}). See npm run cluster -- status; stop it with Ctrl-C in its terminal or kill ${pid}.`);
    process.exit(1);
  }
  lock.unref();
}
