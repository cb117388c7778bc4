import { Controller, Get, Header, Headers, Inject, NotFoundException } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';
import type { Registry } from 'prom-client';
import { METRICS_REGISTRY } from '#libs/observability';
import { Public } from '../auth/auth.decorators.js';
import { viaEdge } from '../http/edge.js';

@Public()
@SkipThrottle()
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(METRICS_REGISTRY) private readonly registry: Registry) {}

  @Get()
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  metrics(@Headers() headers: Record<string, string | undefined>): Promise<string> {
    // nginx does not pass /metrics on (nginx/shared/edge.conf); this holds should that change.
    if (viaEdge(headers)) throw new NotFoundException(`Cannot GET /metrics`);
    return this.registry.metrics();
  }
}
