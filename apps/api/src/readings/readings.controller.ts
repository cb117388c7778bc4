import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isUuid, isValidIdempotencyKey } from '#libs/readings';
import { clientOf, RequireScopes } from '../auth/auth.decorators.js';
import { ApiError } from '../http/api-error.js';
import type { BatchResult, ReadingAccepted, ReadingStoredNow, SubmitContext } from './dto/readings.dto.js';
import { ReadingStatusService } from './reading-status.service.js';
import { ReadingIntake } from './reading-intake.js';

function parseWait(value: string | undefined): boolean {
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw new ApiError(400, 'bad_request', 'wait must be true or false', [{ path: 'wait', message: 'must be true or false' }]);
}

function contextOf(req: FastifyRequest, idempotencyKey: string | undefined, wait: boolean): SubmitContext {
  if (idempotencyKey !== undefined && !isValidIdempotencyKey(idempotencyKey)) {
    throw new ApiError(400, 'bad_request', 'invalid Idempotency-Key', [{ path: 'Idempotency-Key', message: 'must be 1-128 printable ASCII characters' }]);
  }
  return { idempotencyKey, clientId: clientOf(req).id, requestId: req.id, wait };
}

@Controller('v1/readings')
export class ReadingsController {
  constructor(
    private readonly readings: ReadingIntake,
    private readonly status: ReadingStatusService,
  ) {}

  @Post()
  @RequireScopes('submit')
  async submit(
    @Body() body: unknown,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Query('wait') wait: string | undefined,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ReadingAccepted | ReadingStoredNow> {
    const result = await this.readings.submitOne(body, contextOf(req, idempotencyKey, parseWait(wait)));
    void reply.header('location', `/v1/readings/${result.id}`);
    void reply.status(result.status === 'stored' ? 201 : result.status === 'failed' ? 200 : 202);
    return result;
  }

  @Post('batch')
  @RequireScopes('submit')
  @HttpCode(202)
  submitBatch(@Body() body: unknown, @Req() req: FastifyRequest): Promise<BatchResult> {
    return this.readings.submitBatch(body, contextOf(req, undefined, false));
  }

  /** 404 for a reading of another client, the same answer as for one that does not exist: ids cannot be probed. */
  @Get(':id')
  @RequireScopes('read:own', 'read:all')
  async get(@Param('id') id: string, @Req() req: FastifyRequest): Promise<Record<string, unknown>> {
    if (!isUuid(id)) throw new ApiError(400, 'bad_request', 'not a reading id', [{ path: 'id', message: 'must be a UUID' }]);
    const found = await this.status.find(id.toLowerCase(), clientOf(req));
    if (!found) throw new ApiError(404, 'not_found', `no reading with id ${id}`);
    return found;
  }
}
