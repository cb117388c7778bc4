// How long each kind of process gets after its stop signal before the last resort: SIGKILL, or,
// for PostgreSQL, an immediate shutdown after a fast one that did not finish. One set of numbers
// for every stop: the supervisor's (Ctrl-C, SIGTERM, scaling down), the guardian's when the
// supervisor has died, and the next `npm start` stopping what an earlier run left. Writers get
// their drain timeout (WRITER_DRAIN_TIMEOUT_MS, 25 s by default) plus a margin.
export const STOP_DEADLINES_MS = Object.freeze({ nginx: 15_000, api: 20_000, writer: 35_000, redis: 15_000, cockroach: 60_000, postgres: 30_000 });

/**
 * The bound on a whole stop: the stages run one after another (nginx; the APIs and writers; Redis
 * and any CockroachDB nodes; the PostgreSQL replica, then the primary). A stop of an idle local
 * cluster takes well under a second; this is the worst case, with every last resort taken.
 */
export const STOP_DEADLINE_MS =
  STOP_DEADLINES_MS.nginx + Math.max(STOP_DEADLINES_MS.api, STOP_DEADLINES_MS.writer) + Math.max(STOP_DEADLINES_MS.redis, STOP_DEADLINES_MS.cockroach) + 2 * STOP_DEADLINES_MS.postgres;
