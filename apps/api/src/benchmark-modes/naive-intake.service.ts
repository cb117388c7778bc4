import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { dialectFor, type SqlDialect, withFlags } from '#libs/database';
import type { QueuedReading, ReadingFlag } from '#libs/readings';
import { DatabaseConnector } from '../database/database-connector.js';
import { ApiError } from '../http/api-error.js';

/**
 * INTAKE_MODE=naive, for the benchmark only: the design this service replaces. Each request
 * does the writer's work for its one reading before answering (the previous reading for the
 * flags, then a one-row insert, autocommitted), so the two designs store identical rows and
 * the benchmark compares only where the work happens and how it is batched.
 */
@Injectable()
export class NaiveIntakeService {
  private readonly dialect: SqlDialect;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly connector: DatabaseConnector,
  ) {
    this.dialect = dialectFor(config.db.backend);
  }

  async store(reading: QueuedReading): Promise<{ flags: ReadingFlag[]; storedAt?: string }> {
    this.connector.assertConnected();
    try {
      const toStore = await withFlags((text, values) => this.dataSource.query(text, values), this.dialect, [reading], this.config.intake.spikeKwhPerDay);
      const insert = this.dialect.insertReadings(toStore);
      const [inserted] = await this.dataSource.query<{ stored_at: Date }[]>(insert.text, insert.values);
      return { flags: toStore[0]!.flags, ...(inserted ? { storedAt: inserted.stored_at.toISOString() } : {}) };
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError(503, 'database_unavailable', `the reading was not stored: ${err instanceof Error ? err.message : String(err)}`, [], { 'retry-after': '2' });
    }
  }
}
