import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per process, with process metrics (memory, event-loop lag) included. */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function apiMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    readingsAccepted: new Counter({ name: 'readings_accepted_total', help: 'Readings acknowledged (queued)', registers: [registry] }),
    readingsRejected: new Counter({
      name: 'readings_rejected_total',
      help: 'Readings rejected by validation or conflict',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'auth_failures_total',
      help: 'Requests refused by the key check, by reason (missing, malformed, wrong_header, unknown_or_revoked, scope, blocked, lookup_unavailable)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    shed: new Counter({ name: 'intake_shed_total', help: 'Requests answered 503 because of backlog or Redis', labelNames: ['reason'] as const, registers: [registry] }),
    queueDepth: new Gauge({ name: 'queue_depth_jobs', help: 'Jobs waiting, delayed or active, as last polled', registers: [registry] }),
    enqueueDuration: new Histogram({
      name: 'intake_enqueue_duration_seconds',
      help: 'Time to make a coalesced job durable in Redis',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    jobSize: new Histogram({
      name: 'intake_job_readings',
      help: 'Readings per queued job',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: [registry],
    }),
  };
}
export type ApiMetrics = ReturnType<typeof apiMetrics>;

export function writerMetrics(registry: Registry) {
  return {
    batchSize: new Histogram({
      name: 'writer_batch_size',
      help: 'Readings per database batch',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000],
      registers: [registry],
    }),
    rowsWritten: new Counter({ name: 'writer_rows_written_total', help: 'Rows inserted (new readings stored)', registers: [registry] }),
    duplicatesSkipped: new Counter({
      name: 'writer_duplicates_skipped_total',
      help: 'Readings whose row already existed (redelivered jobs, resends with the same key)',
      registers: [registry],
    }),
    writeDuration: new Histogram({
      name: 'writer_write_duration_seconds',
      help: 'Time of one batch transaction, including retries',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers: [registry],
    }),
    failures: new Counter({
      name: 'writer_failures_total',
      help: 'Batch write failures by kind: transient (retried in-process), batch (given back to the queue)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    transactionRetries: new Counter({
      name: 'writer_transaction_retries_total',
      help: 'Batch transactions run again after a conflict, by SQLSTATE (40001 serialization failure, 40003 ambiguous result, 40P01 deadlock)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    readingsFailed: new Counter({ name: 'writer_readings_failed_total', help: 'Readings isolated as failed with a reason', registers: [registry] }),
    jobsCompleted: new Counter({ name: 'writer_jobs_completed_total', help: 'Queue jobs completed after commit', registers: [registry] }),
  };
}
export type WriterMetrics = ReturnType<typeof writerMetrics>;
