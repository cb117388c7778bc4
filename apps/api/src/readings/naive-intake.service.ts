import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../../../libs/config/src/index.js';
import { dialectFor, rowToValues, type SqlDialect } from '../../../../libs/database/src/index.js';
import { computeFlags, type PreviousReading, type QueuedReading, type ReadingFlag } from '../../../../libs/readings/src/index.js';
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
      const prevQ = this.dialect.previousReadings([{ meterId: reading.meterId, period: reading.period }]);
      const [prev] = await this.dataSource.query<{ t1: string; t2: string | null; t3: string | null; read_at: Date }[]>(prevQ.text, prevQ.values);
      const previous: PreviousReading | undefined = prev ? { values: rowToValues(prev), readAt: prev.read_at.toISOString() } : undefined;
      const flags = computeFlags(reading.values, reading.readAt, previous, this.config.intake.spikeKwhPerDay);
      const insert = this.dialect.insertReadings([{ reading, flags }]);
      const [row] = await this.dataSource.query<{ stored_at: Date }[]>(insert.text, insert.values);
      return { flags, ...(row ? { storedAt: row.stored_at.toISOString() } : {}) };
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError(503, 'database_unavailable', `the reading was not stored: ${err instanceof Error ? err.message : String(err)}`, [], { 'retry-after': '2' });
    }
  }
}
