import { Controller, Get, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#libs/config';
import { ReadingStore, rowToView, type StoredReadingView } from '#libs/database';
import { billingPeriod, isBillingPeriod } from '#libs/readings';
import { clientOf, RequireScopes, seesAll } from '../auth/auth.decorators.js';
import { DatabaseConnector } from '../database/database-connector.js';
import { ApiError } from '../http/api-error.js';

const METER_ID = /^[A-Za-z0-9_-]{1,32}$/;
const MAX_PERIODS = 120;

function monthsBetween(from: string, to: string): number {
  const [fy, fm] = from.split('-').map(Number) as [number, number];
  const [ty, tm] = to.split('-').map(Number) as [number, number];
  return (ty - fy) * 12 + (tm - fm);
}

function shiftMonths(period: string, delta: number): string {
  const [y, m] = period.split('-').map(Number) as [number, number];
  const d = new Date(Date.UTC(y, m - 1 + delta, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

interface PeriodView {
  period: string;
  effective: StoredReadingView;
  submissions?: StoredReadingView[];
}

/**
 * A meter's readings per billing period. By default (consistency=eventual) from a source that
 * may lag a little: the PostgreSQL read replica, or with CockroachDB a follower read (AS OF SYSTEM
 * TIME follower_read_timestamp(), a few seconds old, from the nearest replica). consistency=strong
 * reads current data: the PostgreSQL primary, or a normal CockroachDB read (served by the
 * range's leaseholder).
 */
@Controller('v1/meters')
export class MetersController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly store: ReadingStore,
    private readonly database: DatabaseConnector,
  ) {}

  /**
   * read:all sees every submission; read:own only its own, so for another client's meter it gets
   * what a meter with no readings gets: no periods. accountId is shown to whoever may see the
   * reading: its own submitter (who sent it) and operators.
   */
  @Get(':meterId/readings')
  @RequireScopes('read:own', 'read:all')
  async history(
    @Param('meterId') meterId: string,
    @Query() query: Record<string, string | undefined>,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const errors: { path: string; message: string }[] = [];
    if (!METER_ID.test(meterId)) errors.push({ path: 'meterId', message: 'must be 1-32 characters of A-Z, a-z, 0-9, _ or -' });
    for (const key of Object.keys(query)) {
      if (!['from', 'to', 'history', 'consistency'].includes(key)) errors.push({ path: key, message: 'unknown query parameter' });
    }
    const to = query.to ?? billingPeriod(Date.now(), this.config.intake.timeZone);
    const from = query.from ?? shiftMonths(to, -11);
    if (!isBillingPeriod(from)) errors.push({ path: 'from', message: 'must be a month, YYYY-MM' });
    if (!isBillingPeriod(to)) errors.push({ path: 'to', message: 'must be a month, YYYY-MM' });
    if (isBillingPeriod(from) && isBillingPeriod(to)) {
      const span = monthsBetween(from, to);
      if (span < 0) errors.push({ path: 'from', message: 'must not be after to' });
      else if (span >= MAX_PERIODS) errors.push({ path: 'to', message: `at most ${MAX_PERIODS} months per request` });
    }
    if (query.history !== undefined && !['true', 'false'].includes(query.history)) errors.push({ path: 'history', message: 'must be true or false' });
    if (query.consistency !== undefined && !['eventual', 'strong'].includes(query.consistency)) errors.push({ path: 'consistency', message: 'must be eventual or strong' });
    if (errors.length) throw new ApiError(400, 'bad_request', 'invalid query', errors);

    const history = query.history === 'true';
    const strong = query.consistency === 'strong';
    this.database.assertConnected();
    const client = clientOf(req);
    const { rows, readFrom } = await this.store.meterReadings(meterId, from, to, { history, strong, ...(seesAll(client) ? {} : { clientId: client.id }) });
    const periods: PeriodView[] = [];
    for (const row of rows) {
      const view = rowToView(row);
      const last = periods[periods.length - 1];
      if (last?.period === row.period) last.submissions?.push(view);
      else periods.push(history ? { period: row.period, effective: view, submissions: [view] } : { period: row.period, effective: view });
    }
    void reply.header('x-read-from', readFrom);
    return { meterId, from, to, consistency: strong ? 'strong' : 'eventual', readFrom, periods };
  }
}
