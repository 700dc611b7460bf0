// The fill thread: runs blob fills (upstream fetch, hash, write to the cache's temporary file) for
// the main thread, which serves readers from the file. A cold fetch allocates a socket buffer per
// read; in the main isolate, whose heap holds the policy, the evidence caches and every module,
// that churn started a full collection about every 64 MiB, and those cost more CPU than the copy
// itself (docs/decisions.md, "cold fills in a thread of their own"). This isolate's heap is small,
// so its collections are cheap, and the hashing runs beside the main thread instead of on it.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { UpstreamConfig } from '../config/types.ts';
import { RegistryClient, type ClientObserver } from '../oci/client.ts';
import { RegistryError } from '../oci/errors.ts';
import { DEFAULT_UPSTREAM_FETCH_LIMITS, type UpstreamFetchLimits } from '../oci/fetch-budget.ts';
import { Fill } from './fill.ts';
import { FILL_THREAD_SLOT_HOLDER, type FromFillThread, type ToFillThread, type WireError } from './fill-thread.ts';
import { PageCacheWarmer } from './direct-io.ts';
import { SharedRing } from './ring.ts';
import { blobOrigin } from './upstream-origin.ts';
import { exposedGc } from '../util/exposed-gc.ts';

/**
 * Every socket read is a new 64 KiB buffer, dead as soon as it is written. V8 frees such buffers
 * only when it collects, and it starts a full collection for them only past 64 MiB of garbage:
 * a scavenge every 4 MiB written hands them back while they are still young and cheap to free,
 * keeping the thread's share of a cold fetch's memory small however large the blob.
 */
const SCAVENGE_BYTES = 4 * 1024 * 1024;
/**
 * Each fill's memory shared with the main thread's readers (ring.ts): what it received and the disk
 * has not yet taken, and what readers near the head copy instead of reading the file. A fill runs
 * this far ahead of the disk at most, so the disk's pace does not reach the client while it keeps
 * up on average, and memory stays this much per fill however large the blob.
 */
export const RING_BYTES = 2 * 1024 * 1024;

// Imported on a main thread (scripts/warm-compile-cache.ts fills the compile cache so), it does nothing.
if (parentPort && workerData) serve(parentPort, workerData as FillWorkerData);

interface FillWorkerData {
  upstreams: UpstreamConfig[];
  /** The configured per-upstream fetch budgets (limits.upstream*): cold fills count against them here. */
  fetchLimits?: UpstreamFetchLimits;
  /** Per upstream host, the blob budget's count, shared with the main thread's clients. */
  blobSlots?: Map<string, SharedArrayBuffer>;
  /** Whether fills write past the page cache, and whether what they wrote so is read back into it once filled. */
  directWrites: boolean;
  warmPageCache: boolean;
}

function serve(
  port: MessagePort,
  { upstreams, fetchLimits, blobSlots, directWrites, warmPageCache }: FillWorkerData,
): void {
  const post = (m: FromFillThread): void => port.postMessage(m);
  const observer: ClientObserver = {
    upstreamRequest: (upstream, op, status, seconds) => post({ type: 'request', upstream, op, status, seconds }),
    upstreamBusy: (upstream, budget) => post({ type: 'busy', upstream, budget }),
  };
  const clients = new Map<string, RegistryClient>();
  for (const u of upstreams)
    clients.set(
      u.host,
      new RegistryClient(u, observer, fetchLimits ?? DEFAULT_UPSTREAM_FETCH_LIMITS, slotsOf(blobSlots, u.host), {
        ownBlobConnections: true,
      }),
    );
  const gc = exposedGc();
  const warmer = warmPageCache ? new PageCacheWarmer() : undefined;

  let writtenSinceScavenge = 0;
  function written(bytes: number): void {
    writtenSinceScavenge += bytes;
    if (writtenSinceScavenge < SCAVENGE_BYTES || !gc) return;
    writtenSinceScavenge = 0;
    gc({ type: 'minor' });
  }

  function start(id: number, digest: string, tmpPath: string, upstream: string, repository: string): void {
    const client = clients.get(upstream);
    if (!client) {
      const error = new RegistryError(
        'internal',
        'UNAVAILABLE',
        `internal: the fill thread has no upstream ${upstream}`,
      );
      post({ type: 'done', id, ok: false, bytes: 0, ms: 0, error: wire(error) });
      return;
    }
    let onDisk = 0;
    // Readers are woken a mebibyte at a time, or within 2 ms for a slow upstream (fill.ts); a wake
    // is a message to the main thread only when a reader waits at the head there (ring.ts
    // willWait). The end is always told.
    const report = (fill: Fill): void => {
      if (fill.verified) post({ type: 'progress', id, size: fill.size });
      else if (fill.ring?.takeWaiting()) post({ type: 'progress', id });
    };
    const fill = Fill.start(
      digest,
      tmpPath,
      blobOrigin(client, repository, digest),
      (f, outcome) => {
        // On disk and synced: the main thread's cache takes the file from here. What went to disk
        // direct is read back into the page cache after (direct-io.ts), on a hold of its own.
        if (outcome.ok) {
          const warm = warmer && f.wroteDirect ? f.hold() : undefined;
          f.release();
          if (warm) warmer?.add(warm, outcome.size, () => f.release());
        }
        post(
          outcome.ok
            ? { type: 'done', id, ok: true, bytes: outcome.size, ms: outcome.ms }
            : { type: 'done', id, ok: false, bytes: outcome.bytes, ms: outcome.ms, error: wire(outcome.error) },
        );
      },
      {
        ring: (size, place) => new SharedRing(Math.min(RING_BYTES, size ?? RING_BYTES), place),
        onWake: report,
        direct: directWrites,
        onDisk: (f) => {
          const now = f.onDisk();
          written(now - onDisk);
          onDisk = now;
          // The bytes the ring had no room for are in it now: a reader waiting at the end may go on.
          if (f.verified) report(f);
        },
      },
    );
    fill.started.then(
      () =>
        post({
          type: 'started',
          id,
          size: fill.size,
          ring: (fill.ring as SharedRing).buffer,
          direct: fill.writesDirect,
        }),
      () => undefined, // the failure arrives with 'done'
    );
  }

  port.on('message', (m: ToFillThread) => {
    if (m.type === 'fill') start(m.id, m.digest, m.tmpPath, m.upstream, m.repository);
  });
}

/** What crosses to the main thread of an error: all its answer says, and its cause's message for the log. */
function wire(error: RegistryError): WireError {
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return {
    failure: error.failure,
    code: error.code,
    message: error.message,
    ...(cause ? { cause } : {}),
    ...(error.retryAfter ? { retryAfter: error.retryAfter } : {}),
  };
}

/** The fill thread's hold on an upstream's shared blob budget. */
function slotsOf(slots: Map<string, SharedArrayBuffer> | undefined, host: string) {
  const buffer = slots?.get(host);
  return buffer ? { buffer, holder: FILL_THREAD_SLOT_HOLDER } : undefined;
}
