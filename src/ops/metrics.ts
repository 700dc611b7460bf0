// Prometheus metrics. One registry per proxy instance so tests can run several in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheStats } from '../blobs/cache.ts';
import type { BlobSource } from '../blobs/types.ts';
import type { BlobStoreObserver } from '../blobs/store.ts';
import type { ClientObserver } from '../oci/client.ts';

/** Images get their own deny series up to this many; the rest share one, so no client can grow the label set without bound. */
const MAX_DENIED_IMAGES = 1000;
const OTHER_IMAGES = '(other)';
/** The image label of pulls refused because their registry is not allowlisted. */
export const NOT_ALLOWLISTED = '(not allowlisted)';

/** Why a manifest pull was refused: a fixed set, so the reason label stays bounded. */
export type DenyReason = 'policy' | 'revoked' | 'moved-tag' | 'auth' | 'not-allowlisted';

export class Metrics implements ClientObserver, BlobStoreObserver {
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
    help: 'Gate events: drift, stale serves, break-glass uses, revoked hits, requests refused for load',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  readonly storeUp = new Gauge({
    name: 'pullgate_store_up',
    help: 'Whether the store (SQLite or PostgreSQL) can serve requests: 1 up, 0 down (then /readyz answers 503)',
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'pullgate_store_errors_total',
    help: 'Failed store operations by kind: unreachable, timeout, readonly, full, busy, corrupt, error',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly denied = new Counter({
    name: 'pullgate_denied_pulls_total',
    help: 'Refused manifest pulls by image (registry/repository) and reason: policy, revoked, moved-tag (tagMode deny), auth (auth.rules or a pass-through upstream), not-allowlisted (image "(not allowlisted)")',
    labelNames: ['image', 'reason'] as const,
    registers: [this.registry],
  });
  readonly #deniedImages = new Set<string>();
  readonly revalidationDenied = new Gauge({
    name: 'pullgate_revalidation_denied',
    help: 'Digests served recently that the last re-validation run found would now be denied',
    registers: [this.registry],
  });
  readonly revalidationRuns = new Counter({
    name: 'pullgate_revalidation_runs_total',
    help: 'Re-validation runs completed',
    registers: [this.registry],
  });
  readonly blobLookups = new Counter({
    name: 'pullgate_blob_cache_requests_total',
    help: 'Blob requests by how they were served: hit (cache), join (a fill already running), fill (a new upstream fetch)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly blobFills = new Counter({
    name: 'pullgate_blob_fills_total',
    help: 'Upstream blob fetches into the cache by upstream and outcome',
    labelNames: ['upstream', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly blobBytesFetched = new Counter({
    name: 'pullgate_blob_fetched_bytes_total',
    help: 'Blob bytes fetched from upstreams',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly blobBytesServed = new Counter({
    name: 'pullgate_blob_served_bytes_total',
    help: 'Blob bytes sent to clients by source (cache, fill, memory)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly blobEvictions = new Counter({
    name: 'pullgate_blob_cache_evictions_total',
    help: 'Blob cache entries evicted to make room',
    registers: [this.registry],
  });
  readonly blobCacheBytes = new Gauge({
    name: 'pullgate_blob_cache_bytes',
    help: 'Bytes held in the blob cache',
    registers: [this.registry],
  });
  readonly blobCacheEntries = new Gauge({
    name: 'pullgate_blob_cache_entries',
    help: 'Blobs held in the blob cache',
    registers: [this.registry],
  });
  readonly blobCacheMaxBytes = new Gauge({
    name: 'pullgate_blob_cache_max_bytes',
    help: 'The blob cache size limit (cache.blobs.maxBytes)',
    registers: [this.registry],
  });
  readonly policyReloads = new Counter({
    name: 'pullgate_policy_reloads_total',
    help: 'Policy reloads by result: changed, unchanged, failed (the previous policy stays in force)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly policyReloadOk = new Gauge({
    name: 'pullgate_policy_last_reload_success',
    help: '1 when the last policy load or reload succeeded; 0 when it failed and the previous policy stays in force',
    registers: [this.registry],
  });
  readonly tlsCertificateExpiry = new Gauge({
    name: 'pullgate_tls_certificate_expiry_timestamp_seconds',
    help: 'When the serving TLS certificate (the first in the cert file) expires, as Unix time; absent without TLS',
    registers: [this.registry],
  });

  readonly clientAuth = new Counter({
    name: 'pullgate_client_auth_total',
    help: 'Client authentication: tokens issued or refused at /token; /v2 requests without a valid token (unauthenticated) or refused by auth.rules or a pass-through upstream (denied)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'pullgate_' });
    // Every result from the start, so that rate() and increase() see the first reload.
    for (const result of ['changed', 'unchanged', 'failed']) this.policyReloads.inc({ result }, 0);
  }

  policyReloaded(result: 'changed' | 'unchanged' | 'failed'): void {
    this.policyReloads.inc({ result });
    this.policyReloadOk.set(result === 'failed' ? 0 : 1);
  }

  /**
   * `image` is an allowlisted registry/repository; a name on a registry that is not allowlisted is the
   * client's own text and never becomes a label: it is counted as NOT_ALLOWLISTED.
   */
  deniedPull(image: string, reason: DenyReason): void {
    if (!this.#deniedImages.has(image) && this.#deniedImages.size >= MAX_DENIED_IMAGES) {
      this.denied.inc({ image: OTHER_IMAGES, reason });
      return;
    }
    this.#deniedImages.add(image);
    this.denied.inc({ image, reason });
  }

  lookup(kind: 'hit' | 'join' | 'fill'): void {
    this.blobLookups.inc({ result: kind });
  }

  fill(upstream: string, outcome: 'ok' | 'failed', bytes: number): void {
    this.blobFills.inc({ upstream, outcome });
    this.blobBytesFetched.inc({ upstream }, bytes);
  }

  served(source: BlobSource, bytes: number): void {
    this.blobBytesServed.inc({ source }, bytes);
  }

  cacheChanged(stats: CacheStats): void {
    this.blobCacheBytes.set(stats.bytes);
    this.blobCacheEntries.set(stats.entries);
    this.blobCacheMaxBytes.set(stats.maxBytes);
  }

  upstreamRequest(upstream: string, op: string, status: number | 'error', seconds: number): void {
    this.upstreamLatency.observe({ upstream, op }, seconds);
    if (status === 'error' || status >= 500) this.upstreamErrors.inc({ upstream, op });
  }

  /** A request refused because an upstream's fetch budget (limits.upstreamRequests / upstreamBlobRequests) and queue were full. */
  upstreamBusy(_upstream: string, budget: 'requests' | 'blobs'): void {
    this.events.inc({ event: budget === 'blobs' ? 'upstream-blobs-refused-busy' : 'upstream-requests-refused-busy' });
  }
}
