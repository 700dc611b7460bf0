// The per-upstream budget of concurrent upstream requests (`limits.upstreamRequests`,
// `limits.upstreamBlobRequests`, `limits.upstreamQueue`). undici queues requests past an Agent's
// connections without bound; this budget holds a request's slot from before it is sent until its
// response body is closed (read, cut or destroyed), queues a bounded number behind it, and refuses
// the next one at once: 503 TOOMANYREQUESTS with Retry-After, naming the key.
import type { Readable } from 'node:stream';
import { AdmissionQueue } from '../util/admission-queue.ts';
import { SharedAdmissionQueue, type SharedSlots } from '../util/shared-admission-queue.ts';
import { RegistryError } from './errors.ts';

export interface UpstreamFetchLimits {
  /** Manifest, tag list, referrers and token requests in flight per upstream. */
  requests: number;
  /** Blob transfers in flight per upstream (a blob fill shared by all its readers is one). */
  blobRequests: number;
  /** Requests waiting for a slot, per budget; one more is refused. A waiter's deadline bounds its wait. */
  queue: number;
}

export const DEFAULT_UPSTREAM_FETCH_LIMITS: UpstreamFetchLimits = { requests: 128, blobRequests: 64, queue: 512 };

/** The fetch limits of the `limits.*` keys. */
export function fetchLimitsOf(b: {
  upstreamRequests: number;
  upstreamBlobRequests: number;
  upstreamQueue: number;
}): UpstreamFetchLimits {
  return { requests: b.upstreamRequests, blobRequests: b.upstreamBlobRequests, queue: b.upstreamQueue };
}

/** Seconds a client refused for an upstream's load is told to wait. */
export const UPSTREAM_BUSY_RETRY_AFTER = '2';

export type BudgetKind = 'requests' | 'blobs';

export class UpstreamFetchBudget {
  readonly limits: UpstreamFetchLimits;
  readonly #host: string;
  readonly #queues: Record<BudgetKind, AdmissionQueue | SharedAdmissionQueue>;

  /**
   * `sharedBlobSlots` (util/shared-admission-queue.ts) makes the blob budget one across the threads
   * that hold it: blob HEADs and evidence blobs in the main thread, cold fills in the fill thread.
   */
  constructor(host: string, limits: UpstreamFetchLimits, sharedBlobSlots?: SharedSlots) {
    this.#host = host;
    this.limits = limits;
    this.#queues = {
      requests: new AdmissionQueue(limits.requests, limits.queue),
      blobs: sharedBlobSlots
        ? new SharedAdmissionQueue(sharedBlobSlots.buffer, limits.blobRequests, limits.queue, sharedBlobSlots.holder)
        : new AdmissionQueue(limits.blobRequests, limits.queue),
    };
  }

  /**
   * A slot of `kind`, released by the function returned (once). Throws the busy error when the
   * budget and its queue are full, or `signal`'s reason when it aborts while waiting.
   */
  async acquire(kind: BudgetKind, signal?: AbortSignal): Promise<() => void> {
    const queue = this.#queues[kind];
    const release = await queue.acquire(signal);
    if (release) return release;
    const key = kind === 'blobs' ? 'limits.upstreamBlobRequests' : 'limits.upstreamRequests';
    const running = kind === 'blobs' ? this.limits.blobRequests : this.limits.requests;
    const what = kind === 'blobs' ? 'blob transfers' : 'requests';
    throw new RegistryError(
      'unavailable',
      'TOOMANYREQUESTS',
      `the proxy is busy with upstream ${this.#host}: ${queue.active} ${what} are in flight and ${queue.queued} are waiting (${key} ${running}, limits.upstreamQueue ${this.limits.queue}); try again in ${UPSTREAM_BUSY_RETRY_AFTER} s`,
      { retryAfter: UPSTREAM_BUSY_RETRY_AFTER },
    );
  }

  /** In flight and waiting, per budget (metrics, tests). */
  usage(kind: BudgetKind): { active: number; queued: number } {
    const q = this.#queues[kind];
    return { active: q.active, queued: q.queued };
  }
}

/**
 * Releases `release` once `body` is read to its end or closed (cut, or destroyed by a deadline),
 * whichever comes first, so that the request following a drained one (the token request after a
 * 401, a redirect's target) finds the slot free again even with a budget of 1.
 */
export function releaseWith(body: Readable, release: () => void): void {
  if (body.closed || body.destroyed || body.readableEnded) return release();
  body.once('end', release);
  body.once('close', release);
}
