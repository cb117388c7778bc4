// How long each kind of process gets after its stop signal before the last resort: SIGKILL, or,
// for PostgreSQL, an immediate shutdown after a fast one that did not finish. One set of numbers
// for every stop: the supervisor's (Ctrl-C, SIGTERM, SIGHUP, scaling down), the guardian's when
// the supervisor has died, and the next `npm start` stopping what an earlier run left. Writers get
// their drain timeout (WRITER_DRAIN_TIMEOUT_MS, 25 s by default) plus a margin.
export const STOP_DEADLINES_MS = Object.freeze({
  nginx: 15_000,
  api: 20_000,
  writer: 35_000,
  redis: 15_000,
  cockroach: 60_000,
  /** pg_ctl stop -m fast, per server */
  postgresFast: 20_000,
  /** then pg_ctl stop -m immediate, per server, before SIGKILL */
  postgresImmediate: 10_000,
  /** how long a process gets to disappear after SIGKILL */
  kill: 5_000,
  /** per pg_ctl call: the exit that follows its return, and a hung pg_ctl's own margin */
  postgresSettle: 2_000,
  /** the supervisor only: a watchdog round that is restarting a server when the stop begins */
  watchdogRound: 10_000,
});

const d = STOP_DEADLINES_MS;

const postgresServer = d.postgresFast + d.postgresImmediate + 2 * d.postgresSettle + d.kill;

/**
 * The bound on a whole stop, from the order the stages run in: (the supervisor's) a watchdog round
 * in progress; nginx; the API replicas and writers together; then Redis and the PostgreSQL replica
 * and primary one after the other, or Redis and the CockroachDB nodes together. Each stage counts
 * its SIGKILL grace. A stop of a local cluster takes well under a second when nothing is stuck;
 * this is the worst case, with every last resort taken.
 */
export const STOP_DEADLINE_MS =
  d.watchdogRound + d.nginx + d.kill + Math.max(d.api, d.writer) + d.kill + Math.max(d.redis + d.kill + 2 * postgresServer, Math.max(d.redis, d.cockroach) + d.kill);
