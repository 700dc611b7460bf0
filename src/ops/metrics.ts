// Prometheus metrics. One registry per proxy instance so tests can run several in one process.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClientObserver } from '../oci/client.ts';

export class Metrics implements ClientObserver {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'pullgate_requests_total',
    help: 'Client requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'pullgate_request_duration_seconds',
    help: 'Client request latency to response end',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly upstreamLatency = new Histogram({
    name: 'pullgate_upstream_duration_seconds',
    help: 'Upstream round trips to response headers',
    labelNames: ['upstream', 'op'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'pullgate_upstream_errors_total',
    help: 'Upstream round trips that failed or answered 5xx',
    labelNames: ['upstream', 'op'] as const,
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'pullgate_decisions_total',
    help: 'Policy decisions by verdict, enforcement and whether they came from cache',
    labelNames: ['verdict', 'judgement', 'cached'] as const,
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'pullgate_events_total',
    help: 'Gate events: drift, stale serves, break-glass uses, revoked hits',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'pullgate_' });
  }

  upstreamRequest(upstream: string, op: string, status: number | 'error', seconds: number): void {
    this.upstreamLatency.observe({ upstream, op }, seconds);
    if (status === 'error' || status >= 500) this.upstreamErrors.inc({ upstream, op });
  }
}
