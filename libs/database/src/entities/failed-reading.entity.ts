import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * A reading the database refused (bad data that slipped past validation). Kept with its
 * reason so it stays visible and can be replayed; the rest of its batch commits without it.
 * Text columns on purpose: the payload may hold exactly the bytes the readings table rejected.
 */
@Entity({ name: 'failed_readings' })
export class FailedReadingEntity {
  @PrimaryColumn({ type: 'text' })
  id!: string;

  @Column({ name: 'meter_id', type: 'text', nullable: true })
  meterId!: string | null;

  @Column({ type: 'text' })
  payload!: string;

  @Column({ type: 'text' })
  reason!: string;

  @Column({ type: 'varchar', length: 5, nullable: true })
  sqlstate!: string | null;

  @Column({ name: 'failed_at', type: 'timestamptz', default: () => 'now()' })
  failedAt!: Date;
}
