import { inject } from 'vitest';
import { PgInstance, RedisInstance } from '../../scripts/lib/stack.mjs';

/**
 * Handles on the shared stack's servers for tests that stop and restart them. The instances
 * are rebuilt from the data folder the global setup created; pg_ctl works on the folder.
 */
export function stackControl() {
  const info = inject('stack');
  const sockets = `${info.dir}/sockets`;
  const primary = new PgInstance('primary', `${info.dir}/pg-primary`, info.pgPort, sockets, `${info.dir}/logs/pg-primary.log`);
  const replica = new PgInstance('replica', `${info.dir}/pg-replica`, info.replicaPort, sockets, `${info.dir}/logs/pg-replica.log`);
  return { info, primary, replica };
}

export type { RedisInstance };
