import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateReadings1795258000000 implements MigrationInterface {
  name = 'CreateReadings1795258000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE readings (
        id uuid PRIMARY KEY,
        meter_id varchar(32) NOT NULL,
        account_id varchar(20),
        period date NOT NULL,
        read_at timestamptz NOT NULL,
        t1 numeric(12,3) NOT NULL,
        t2 numeric(12,3),
        t3 numeric(12,3),
        source varchar(16),
        flags text[] NOT NULL DEFAULT '{}',
        received_at timestamptz NOT NULL,
        stored_at timestamptz NOT NULL DEFAULT now(),
        request_id varchar(128)
      )`);
    await q.query(`CREATE INDEX readings_meter_period_idx ON readings (meter_id, period, received_at, id)`);
    await q.query(`
      CREATE TABLE failed_readings (
        id text PRIMARY KEY,
        meter_id text,
        payload text NOT NULL,
        reason text NOT NULL,
        sqlstate varchar(5),
        failed_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE failed_readings`);
    await q.query(`DROP TABLE readings`);
  }
}
