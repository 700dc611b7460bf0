// Fills that run in the fill thread (fill-worker.ts): the main thread's side. Each one is a
// RunningFill whose readers copy the newest bytes from the memory the thread shares (ring.ts) and
// read older ones from the temporary file, up to what the thread has hashed (less the last byte
// until it has verified the content), so the guarantees of fill.ts hold unchanged. The thread
// starts with the first fill and stops when the proxy goes quiet, so an idle proxy does not keep
// its memory; if it dies, its fills fail and the next fill starts another.
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { UpstreamConfig } from '../config/types.ts';
import type { ClientObserver } from '../oci/client.ts';
import { RegistryError, type ErrorCode, type Failure } from '../oci/errors.ts';
import type { BudgetKind, UpstreamFetchLimits } from '../oci/fetch-budget.ts';
import type { FillOutcome, RunningFill } from './fill.ts';
import { deferred, SharedFile, Waiters, type Hooks } from './fill-handle.ts';
import { SharedRing } from './ring.ts';
import { reclaimSlots } from '../util/shared-admission-queue.ts';

export type ToFillThread = {
  type: 'fill';
  id: number;
  digest: string;
  tmpPath: string;
  upstream: string;
  repository: string;
};

export interface WireError {
  failure: Failure;
  code: ErrorCode;
  message: string;
  /** The cause's message: detail for the log, kept out of the answer. */
  cause?: string;
  /** A refusal for load keeps its Retry-After across the thread boundary. */
  retryAfter?: string;
}

export type FromFillThread =
  /** The upstream answered; `ring` is the fill's shared memory (ring.ts); `direct`: the file is written past the page cache. */
  | { type: 'started'; id: number; size: number | undefined; ring: SharedArrayBuffer; direct: boolean }
  /** More is in the ring; `size` once the content is verified: the whole length. */
  | { type: 'progress'; id: number; size?: number }
  | {
      type: 'done';
      id: number;
      ok: boolean;
      bytes: number;
      ms: number;
      error?: WireError;
    }
  | { type: 'request'; upstream: string; op: string; status: number | 'error'; seconds: number }
  /** A fill refused because the upstream's fetch budget (in the thread) and its queue were full. */
  | { type: 'busy'; upstream: string; budget: BudgetKind };

/** The fill thread's index among the holders of a shared blob budget (util/shared-admission-queue.ts). */
export const FILL_THREAD_SLOT_HOLDER = 1;

export interface FillThreadOptions {
  upstreams: readonly UpstreamConfig[];
  /**
   * The per-upstream fetch budgets (limits.upstreamRequests, upstreamBlobRequests, upstreamQueue)
   * of the thread's own registry clients: cold fills count against them where they run.
   */
  fetchLimits?: UpstreamFetchLimits;
  /** Per upstream host, the blob budget's count the main thread's clients share (util/shared-admission-queue.ts). */
  blobSlots?: ReadonlyMap<string, SharedArrayBuffer>;
  observer?: ClientObserver;
  /** The worker's module: fill-worker.ts; tests give a scripted one. */
  script?: URL;
  /** Cold fills write past the page cache where the filesystem allows (direct-io.ts); false unless true. */
  directWrites?: boolean;
  /** Read files written direct back into the page cache once filled (direct-io.ts PageCacheWarmer); true unless false. */
  warmPageCache?: boolean;
}

export class FillThread {
  readonly #options: FillThreadOptions;
  #worker: Worker | undefined;
  #nextId = 1;
  readonly #fills = new Map<number, RemoteFill>();
  #closed = false;

  constructor(options: FillThreadOptions) {
    this.#options = options;
  }

  /** Whether a thread is up now (it starts with a fill and stops when the proxy is idle). */
  get running(): boolean {
    return this.#worker !== undefined;
  }

  /** Whether the thread can fetch for this origin (an allowlisted upstream repository). */
  serves(upstream: string, repository: string | undefined): repository is string {
    return repository !== undefined && this.#options.upstreams.some((u) => u.host === upstream);
  }

  start(
    digest: string,
    tmpPath: string,
    upstream: string,
    repository: string,
    done: (fill: RunningFill, outcome: FillOutcome) => void,
  ): RunningFill {
    const id = this.#nextId++;
    const fill = new RemoteFill(digest, tmpPath, upstream, (outcome) => {
      this.#fills.delete(id);
      done(fill, outcome);
    });
    if (this.#closed) {
      fill.settle(false, 0, 0, new RegistryError('unavailable', 'UNAVAILABLE', 'the proxy is shutting down'));
      return fill;
    }
    this.#fills.set(id, fill);
    const message: ToFillThread = { type: 'fill', id, digest, tmpPath, upstream, repository };
    this.#thread().postMessage(message);
    return fill;
  }

  /** Starts the thread ahead of a fill expected soon, unless it runs already; false when closed (no thread then). */
  prestart(): boolean {
    if (this.#closed) return false;
    this.#thread();
    return true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) await worker.terminate();
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(this.#options.script ?? new URL('./fill-worker.ts', import.meta.url), {
      workerData: {
        upstreams: this.#options.upstreams,
        fetchLimits: this.#options.fetchLimits,
        blobSlots: this.#options.blobSlots,
        directWrites: this.#options.directWrites === true,
        warmPageCache: this.#options.warmPageCache !== false,
      },
    });
    worker.unref();
    worker.on('message', (m: FromFillThread) => this.#receive(m));
    worker.on('error', (err) => this.#lost(worker, err.message));
    worker.on('exit', (code) => this.#lost(worker, `it exited with code ${code}`));
    this.#worker = worker;
    return worker;
  }

  #receive(m: FromFillThread): void {
    if (m.type === 'request') {
      this.#options.observer?.upstreamRequest(m.upstream, m.op, m.status, m.seconds);
      return;
    }
    if (m.type === 'busy') {
      this.#options.observer?.upstreamBusy?.(m.upstream, m.budget);
      return;
    }
    const fill = this.#fills.get(m.id);
    if (!fill) return;
    if (m.type === 'started') fill.begin(m.size, new SharedRing(m.ring), m.direct);
    else if (m.type === 'progress') fill.progress(m.size);
    else {
      const e = m.error;
      const error =
        e &&
        new RegistryError(e.failure, e.code, e.message, {
          ...(e.cause ? { cause: new Error(e.cause) } : {}),
          ...(e.retryAfter ? { retryAfter: e.retryAfter } : {}),
        });
      fill.settle(m.ok, m.bytes, m.ms, error);
    }
  }

  /** The thread died (a bug, or out of memory): its fills fail; the next fill starts a new thread. */
  #lost(worker: Worker, why: string): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    this.#reclaimSlots();
    const fills = [...this.#fills.values()];
    this.#fills.clear();
    const error = new RegistryError('unavailable', 'UNAVAILABLE', `the blob fill thread stopped (${why})`);
    for (const fill of fills) {
      fill.settle(false, 0, 0, error);
      unlink(fill.tmpPath).catch(() => undefined);
    }
  }

  /**
   * Stops the thread if no fill runs: called when the proxy has gone quiet (src/ops/idle-gc.ts), so
   * an idle proxy keeps nothing of it, while one that is serving keeps a thread whose code is
   * already optimised (a new one runs its first fills in unoptimised code).
   */
  async stopIfIdle(): Promise<void> {
    const worker = this.#worker;
    if (this.#fills.size > 0 || !worker) return;
    this.#worker = undefined;
    await worker.terminate();
    this.#reclaimSlots();
  }

  /** What a thread that ended held of the blob budgets is free again (none, unless it died mid-transfer). */
  #reclaimSlots(): void {
    for (const buffer of this.#options.blobSlots?.values() ?? []) reclaimSlots(buffer, FILL_THREAD_SLOT_HOLDER);
  }
}

class RemoteFill implements RunningFill {
  readonly digest: string;
  readonly tmpPath: string;
  readonly upstream: string;
  readonly started: Promise<void>;
  readonly complete: Promise<void>;
  #size: number | undefined;
  /** Until the fill is done: its bytes not yet on disk, and the newest ones that are. */
  #ring: SharedRing | undefined;
  /** The whole content is verified and on disk (the ring is gone). */
  #onDisk = false;
  #direct = false;
  /** The ring's `hi` when a reader last asked what it may have. */
  #seen = 0;
  #verified = false;
  #error: RegistryError | undefined;
  readonly #file = new SharedFile();
  readonly #waiters = new Waiters();
  readonly #startedHooks: Hooks;
  readonly #completeHooks: Hooks;
  #settled = false;
  /** The open of the file for readers, once the thread said the upstream answered. */
  #opening: Promise<void> = Promise.resolve();
  #openError: string | undefined;
  readonly #done: (outcome: FillOutcome) => void;

  constructor(digest: string, tmpPath: string, upstream: string, done: (outcome: FillOutcome) => void) {
    this.digest = digest;
    this.tmpPath = tmpPath;
    this.upstream = upstream;
    this.#done = done;
    const started = deferred();
    const complete = deferred();
    this.started = started.promise;
    this.#startedHooks = started.hooks;
    this.complete = complete.promise;
    this.#completeHooks = complete.hooks;
  }

  get size(): number | undefined {
    return this.#size;
  }

  get failed(): RegistryError | undefined {
    return this.#error;
  }

  available(): number {
    if (!this.#ring) return this.#onDisk ? (this.#size ?? 0) : 0;
    const hi = this.#ring.hi;
    this.#seen = hi;
    return this.#verified && hi === this.#size ? hi : Math.max(0, hi - 1);
  }

  /** Below the ring's oldest byte, the file has every byte (the thread overwrites none not yet written). */
  onDisk(): number {
    return this.#ring ? Math.min(this.#ring.lo, this.available()) : this.available();
  }

  /** Copies from the thread's memory what a reader at `pos` may have; 0 sends it to the file, which has those bytes. */
  copyOut(pos: number, limit: number, into: Buffer): number {
    return this.#ring?.copyOut(pos, limit, into) ?? 0;
  }

  changed(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    // The thread sends word of more bytes only to a reader that waits for them (ring.ts willWait).
    if (this.#ring && !this.#verified && !this.#ring.willWait(this.#seen)) return Promise.resolve();
    return this.#waiters.wait();
  }

  get readsDirect(): boolean {
    return this.#direct;
  }

  hold(): FileHandle | undefined {
    return this.#error ? undefined : this.#file.hold();
  }

  release(): void {
    this.#file.release();
  }

  /** The upstream answered: the thread created the file; this thread opens it for its readers. */
  begin(size: number | undefined, ring: SharedRing, direct: boolean): void {
    this.#size = size;
    this.#ring = ring;
    this.#direct = direct;
    this.#opening = open(this.tmpPath, 'r').then(
      (fh) => {
        if (this.#error) {
          fh.close().catch(() => undefined);
          return;
        }
        this.#file.set(fh);
        this.#startedHooks.resolve();
      },
      // The thread may have failed and removed the file already: its own reason follows with 'done'.
      (err: NodeJS.ErrnoException) => {
        this.#openError = `${err.code ?? err.message} at ${this.tmpPath}`;
      },
    );
  }

  progress(size: number | undefined): void {
    if (size !== undefined && !this.#verified) {
      this.#verified = true;
      this.#size = size;
      this.#completeHooks.resolve();
    }
    this.#waiters.wake();
  }

  /** The thread's outcome; told once the file is open here, so a small blob's quick end finds its readers' handle. */
  settle(ok: boolean, bytes: number, ms: number, error: RegistryError | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    void this.#opening.then(() => {
      if (ok && this.#verified && this.#file.handle && !this.#error) {
        // All on disk and synced: readers read the file from here, and the memory can go.
        this.#ring = undefined;
        this.#onDisk = true;
        this.#done({ ok: true, size: bytes, ms });
        return;
      }
      const failure =
        this.#error ??
        error ??
        (this.#openError
          ? new RegistryError(
              'unavailable',
              'UNAVAILABLE',
              `the blob cache cannot read ${this.digest} (${this.#openError})`,
            )
          : new RegistryError('internal', 'UNAVAILABLE', `internal: the fill of ${this.digest} ended unverified`));
      this.#fail(failure);
      // The thread kept a verified file this side cannot serve: it is not left behind.
      if (ok) unlink(this.tmpPath).catch(() => undefined);
      this.#done({ ok: false, error: failure, bytes, ms });
    });
  }

  #fail(failure: RegistryError): void {
    if (this.#error) return;
    this.#error = failure;
    this.#ring = undefined;
    this.#startedHooks.reject(failure);
    this.#completeHooks.reject(failure);
    this.#waiters.fail(failure);
    this.release();
  }
}
