// The blob store below the gate: bytes for a digest, from the local cache or from one upstream
// fill shared by every request for that digest while it runs. It never decides what may be
// served; the gate checks the permit first and hands it an origin bound to the permitted
// repository.
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../ops/log.ts';
import type { BlobCache } from './cache.ts';
import { FINAL, sendFile, type GrowingFile } from './file-sender.ts';
import { Fill, SHARED_UNWRITTEN_BYTES, WriteBudget, type FillOutcome, type RunningFill } from './fill.ts';
import { deferred } from './fill-handle.ts';
import type { FillThread } from './fill-thread.ts';
import type { BlobBody, BlobOrigin, BlobSource } from './types.ts';

export interface BlobStoreObserver {
  /** `hit`: served from the cache; `join`: read from a fill already running; `fill`: started one. */
  lookup(kind: 'hit' | 'join' | 'fill'): void;
  fill(upstream: string, outcome: 'ok' | 'failed', bytes: number): void;
  served(source: BlobSource, bytes: number): void;
}

const NO_OBSERVER: BlobStoreObserver = { lookup() {}, fill() {}, served() {} };

export class BlobStore {
  readonly #cache: BlobCache;
  readonly #logger: Logger;
  readonly #observer: BlobStoreObserver;
  /** Fills in progress, by digest, until their content is in the cache (or they failed). */
  readonly #fills = new Map<string, RunningFill>();
  /** One per fill not yet ended: resolves once its content is in the cache, or it failed. */
  readonly #ends = new Set<Promise<void>>();
  /** Memory every fill may borrow to run ahead of a slow disk (fill.ts). */
  readonly #budget = new WriteBudget(SHARED_UNWRITTEN_BYTES);

  /** Where fills from allowlisted upstreams run; this thread when absent (tests with in-memory origins). */
  readonly #thread: FillThread | undefined;

  constructor(cache: BlobCache, logger: Logger, observer: BlobStoreObserver = NO_OBSERVER, thread?: FillThread) {
    this.#cache = cache;
    this.#logger = logger;
    this.#observer = observer;
    this.#thread = thread;
  }

  /**
   * Lets running fills end, for at most `waitMs`, then stops the fill thread. A fill whose client was
   * served is still syncing and renaming its file: cut off there, the next process would fetch the
   * blob again.
   */
  async close(waitMs = 0): Promise<void> {
    if (this.#ends.size > 0 && waitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
      await Promise.race([Promise.all(this.#ends), timeout]);
      clearTimeout(timer);
    }
    await this.#thread?.close();
  }

  get cache(): BlobCache {
    return this.#cache;
  }

  /** Fills running now (their content not yet in the cache). */
  get filling(): number {
    return this.#fills.size;
  }

  /**
   * An admitted image's blobs, which its client asks for next. If one must be fetched, the fill
   * thread starts now, while the client reads the manifest: started by the first blob request, it
   * took that request's first ~70 ms (docs/decisions.md, "The fill thread starts with the pull").
   */
  expect(digests: readonly string[], upstream: string, repository: string): void {
    const thread = this.#thread;
    if (!thread || thread.running || !thread.serves(upstream, repository)) return;
    const uncached = digests.filter((d) => !this.#cache.has(d) && !this.#fills.has(d)).length;
    if (uncached === 0 || !thread.prestart()) return;
    this.#logger.info(
      { upstream, repository, uncached },
      'fill thread started: an admitted image lists blobs to fetch',
    );
  }

  /** The blob's length without its bytes: from the cache, a running fill, or the upstream. */
  async size(digest: string, origin: BlobOrigin): Promise<number | undefined> {
    const entry = await this.#cache.find(digest);
    if (entry) return entry.size;
    const fill = this.#fills.get(digest);
    if (fill && !fill.failed) {
      await fill.started;
      return fill.size;
    }
    return (await origin.head()).size;
  }

  /**
   * The blob's bytes. Resolves once they can flow (a cache entry is open, or the upstream answered
   * a fill with its headers); rejects with the upstream's error before any byte is promised.
   */
  async open(digest: string, origin: BlobOrigin): Promise<BlobBody> {
    const cached = await this.#openCached(digest);
    if (cached) return cached;
    let fill = this.#fills.get(digest);
    if (fill && !fill.failed) {
      this.#observer.lookup('join');
    } else {
      this.#observer.lookup('fill');
      const end = deferred();
      this.#ends.add(end.promise);
      const settle = (f: RunningFill, outcome: FillOutcome): void =>
        void this.#settle(f, outcome)
          .catch((err: Error) =>
            this.#logger.error({ digest: f.digest, error: err.message }, 'internal: blob fill not settled'),
          )
          .finally(() => {
            this.#ends.delete(end.promise);
            end.hooks.resolve();
          });
      const tmpPath = this.#cache.tmpPath();
      fill = this.#thread?.serves(origin.upstream, origin.repository)
        ? this.#thread.start(digest, tmpPath, origin.upstream, origin.repository, settle)
        : Fill.start(digest, tmpPath, origin, settle, { budget: this.#budget });
      this.#fills.set(digest, fill);
    }
    await fill.started;
    return this.#fillBody(fill);
  }

  async #openCached(digest: string): Promise<BlobBody | undefined> {
    const entry = await this.#cache.find(digest);
    if (!entry) return undefined;
    const fh = await open(this.#cache.pathOf(digest), 'r').catch(() => undefined);
    const size = fh ? (await fh.stat()).size : -1;
    if (!fh || size !== entry.size) {
      // Removed or cut short beside the proxy: forget it and fetch again.
      await fh?.close();
      await this.#cache.remove(digest);
      return undefined;
    }
    this.#observer.lookup('hit');
    return this.#body(
      digest,
      'cache',
      size,
      Promise.resolve(),
      fh,
      () => size,
      FINAL,
      () => {
        fh.close().catch(() => undefined);
      },
    );
  }

  #fillBody(fill: RunningFill): BlobBody {
    const fh = fill.hold();
    if (!fh) throw fill.failed;
    return this.#body(
      fill.digest,
      'fill',
      fill.size,
      fill.complete,
      fh,
      () => fill.size,
      fill,
      () => fill.release(),
    );
  }

  #body(
    digest: string,
    source: BlobSource,
    size: number | undefined,
    complete: Promise<void>,
    fh: FileHandle,
    length: () => number | undefined,
    growing: GrowingFile,
    release: () => void,
  ): BlobBody {
    let released = false;
    const done = (): void => {
      if (released) return;
      released = true;
      release();
    };
    const observer = this.#observer;
    return {
      digest,
      source,
      size,
      complete,
      async send(out, range, writeTimeoutMs) {
        if (released) throw new Error('internal: a blob body is sent once');
        let sent = 0;
        try {
          sent = await sendFile(fh, out, {
            start: range?.start ?? 0,
            end: range && Number.isFinite(range.end) ? range.end + 1 : undefined,
            length,
            growing,
            writeTimeoutMs,
          });
          return sent;
        } finally {
          observer.served(source, sent);
          done();
        }
      },
      close: done,
    };
  }

  async #settle(fill: RunningFill, outcome: FillOutcome): Promise<void> {
    let kept = false;
    if (outcome.ok) {
      try {
        kept = await this.#cache.admit(fill.tmpPath, fill.digest, outcome.size);
      } catch (err) {
        this.#logger.error({ digest: fill.digest, error: (err as Error).message }, 'blob fill verified but not cached');
      }
      fill.release();
    }
    if (this.#fills.get(fill.digest) === fill) this.#fills.delete(fill.digest);
    const bytes = outcome.ok ? outcome.size : outcome.bytes;
    this.#observer.fill(fill.upstream, outcome.ok ? 'ok' : 'failed', bytes);
    const line = {
      digest: fill.digest,
      upstream: fill.upstream,
      bytes,
      ms: Math.round(outcome.ms),
      mibPerSecond: Math.round(bytes / 1048576 / Math.max(outcome.ms / 1000, 0.001)),
      // Written past the page cache (direct-io.ts), or through it.
      direct: fill.readsDirect === true,
    };
    if (outcome.ok) this.#logger.info({ ...line, kept }, 'blob fill');
    else this.#logger.warn({ ...line, error: outcome.error.message }, 'blob fill failed');
  }
}
