import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * A stored reading. The primary key is the submission id chosen by the API, so a job
 * redelivered after a crash maps onto the row it already wrote instead of making a second one.
 * The hot paths use hand-written SQL (array parameters); the entity documents the table.
 */
@Entity({ name: 'readings' })
@Index('readings_meter_period_idx', ['meterId', 'period', 'receivedAt', 'id'])
export class ReadingEntity {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ name: 'meter_id', type: 'varchar', length: 32 })
  meterId!: string;

  @Column({ name: 'account_id', type: 'varchar', length: 20, nullable: true })
  accountId!: string | null;

  /** First day of the billing month in the configured time zone. */
  @Column({ type: 'date' })
  period!: string;

  @Column({ name: 'read_at', type: 'timestamptz' })
  readAt!: Date;

  @Column({ type: 'numeric', precision: 12, scale: 3 })
  t1!: string;

  @Column({ type: 'numeric', precision: 12, scale: 3, nullable: true })
  t2!: string | null;

  @Column({ type: 'numeric', precision: 12, scale: 3, nullable: true })
  t3!: string | null;

  @Column({ type: 'varchar', length: 16, nullable: true })
  source!: string | null;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  flags!: string[];

  @Column({ name: 'received_at', type: 'timestamptz' })
  receivedAt!: Date;

  @Column({ name: 'stored_at', type: 'timestamptz', default: () => 'now()' })
  storedAt!: Date;

  @Column({ name: 'request_id', type: 'varchar', length: 128, nullable: true })
  requestId!: string | null;
}
