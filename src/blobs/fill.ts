// One upstream fetch of one blob, hashed as it arrives and written to a file behind it. It runs at
// the upstream's speed whatever its readers do: readers take the newest bytes from a small window
// of the chunks just received, and older ones from the file, never from the socket, so a reader
// that stops stalls only itself. Readers may have every byte received so far except the last: that
// one is released only once the whole content hashes to the digest, so no reader ever receives
// content that does not match complete. The cache takes the file only once it is on disk.
import type { Hash } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.ts';
import { digestHasher } from '../oci/digest.ts';
import type { GrowingFile } from './file-sender.ts';
import { deferred, SharedFile, Waiters, type Hooks } from './fill-handle.ts';
import { alignDown, DIRECT_BLOCK, DirectFile } from './direct-io.ts';
import type { PlaceData, SharedRing } from './ring.ts';
import type { BlobOrigin } from './types.ts';
import { skipBytes } from '../util/buffer-list.ts';
import { feed, READ_BYTES } from '../oci/own-connections.ts';

/**
 * Bytes received but not yet on disk. Every fill may run this far ahead of the disk; beyond it, a
 * fill borrows from a budget all fills share, so one cold fetch is not held to the disk's pace
 * while memory stays bounded however many fills run.
 */
const UNWRITTEN_OWN_BYTES = 8 * 1024 * 1024;
const UNWRITTEN_MAX_BYTES = 64 * 1024 * 1024;
/** Shared by all fills: 56 MiB on top of 8 MiB each, so a lone cold fetch may run 64 MiB ahead of the disk. */
export const SHARED_UNWRITTEN_BYTES = UNWRITTEN_MAX_BYTES - UNWRITTEN_OWN_BYTES;

/** The bytes all fills hold in memory beyond their own allowance, and its limit. */
export class WriteBudget {
  readonly limit: number;
  used = 0;
  constructor(limit: number) {
    this.limit = limit;
  }
}

const NO_BUDGET = new WriteBudget(0);
/** Bytes already on disk kept in memory for readers close behind the head. */
const WINDOW_MAX_BYTES = 2 * 1024 * 1024;
const WAKE_BYTES = 1024 * 1024;
const WAKE_DELAY_MS = 2;

export type FillOutcome =
  { ok: true; size: number; ms: number } | { ok: false; error: RegistryError; bytes: number; ms: number };

/** What the blob store needs of a fill, wherever it runs (this thread, or the fill thread: fill-thread.ts). */
export interface RunningFill extends GrowingFile {
  readonly digest: string;
  readonly tmpPath: string;
  readonly upstream: string;
  /** Resolves once the upstream answered with the blob's headers; rejects with the upstream's error. */
  readonly started: Promise<void>;
  /** Resolves once the content is verified; rejects with why it is not. */
  readonly complete: Promise<void>;
  readonly size: number | undefined;
  readonly failed: RegistryError | undefined;
  /** A reader's hold on the file; undefined when the fill failed (the reader gets its error instead). */
  hold(): FileHandle | undefined;
  release(): void;
}

export interface FillOptions {
  /** Memory to borrow from beyond this fill's own allowance. */
  budget?: WriteBudget;
  /** Told each time more bytes are on disk, and when the content is verified. */
  onDisk?: (fill: Fill) => void;
  /**
   * Bytes already on disk kept in memory for readers close behind the head (2 MiB); 0 where
   * every reader reads the file (the fill thread), so chunks are let go as soon as they are written.
   */
  windowBytes?: number;
  /** Bytes this fill may hold ahead of the disk without borrowing (8 MiB). */
  ownUnwrittenBytes?: number;
  /**
   * Where the fill keeps what it received until it is on disk, instead of the chunks themselves:
   * memory another thread's readers share (ring.ts), made once the upstream told the size. The
   * ring's capacity is then all this fill holds ahead of the disk (no budget, no window).
   */
  ring?: (size: number | undefined, place?: PlaceData) => SharedRing;
  /** Told when readers are woken (a mebibyte more received, a slow upstream's timer, or the end). */
  onWake?: (fill: Fill) => void;
  /** In ring mode, write whole blocks past the page cache where the filesystem allows (direct-io.ts). */
  direct?: boolean;
}

export class Fill implements RunningFill {
  readonly digest: string;
  readonly tmpPath: string;
  readonly upstream: string;
  /** Resolves once the upstream answered with the blob's headers; rejects with the upstream's error. */
  readonly started: Promise<void>;
  /** Resolves once the content is verified; rejects with why it is not. */
  readonly complete: Promise<void>;
  #size: number | undefined;
  /** Bytes taken from the upstream and hashed. */
  #received = 0;
  /** Bytes on disk. */
  #written = 0;
  /** The newest chunks, from position `#windowStart` to `#received`: everything not yet written, and a little more. */
  #window: Buffer[] = [];
  #windowStart = 0;
  #verified = false;
  #error: RegistryError | undefined;
  readonly #file = new SharedFile();
  readonly #waiters = new Waiters();
  /** `#received` when readers were last woken, and the timer that wakes them for a slow upstream. */
  #wokenAt = 0;
  #wakeTimer: NodeJS.Timeout | undefined;
  #budget: WriteBudget = NO_BUDGET;
  #onDisk: ((fill: Fill) => void) | undefined;
  #windowBytes = WINDOW_MAX_BYTES;
  #ownUnwritten = UNWRITTEN_OWN_BYTES;
  /** What this fill borrows from the shared budget now. */
  #borrowed = 0;
  readonly #started: Hooks;
  readonly #complete: Hooks;
  #makeRing: ((size: number | undefined, place?: PlaceData) => SharedRing) | undefined;
  #ring: SharedRing | undefined;
  /** In ring mode, a handle for direct writes of whole blocks (direct-io.ts), while the device takes them. */
  #direct: DirectFile | undefined;
  /** The upstream's body has ended, verified: the copy is done once all is written, and the tail short of a whole block may be written now. */
  #bodyEnded = false;
  #wroteDirect = false;
  #tryDirect = false;
  /** In ring mode, what the ring had no room for yet (the rest of one chunk): the upstream is paused meanwhile. */
  #pending: Buffer | undefined;
  /** Where the rest of a transient chunk waits when the ring is full (reused). */
  #overflow: Buffer | undefined;
  #onWake: ((fill: Fill) => void) | undefined;

  private constructor(digest: string, tmpPath: string, upstream: string) {
    this.digest = digest;
    this.tmpPath = tmpPath;
    this.upstream = upstream;
    const started = deferred();
    const complete = deferred();
    this.started = started.promise;
    this.#started = started.hooks;
    this.complete = complete.promise;
    this.#complete = complete.hooks;
  }

  /** Starts fetching; `done` is told the outcome once the file is on disk (for the cache to take it) or the fill failed. */
  static start(
    digest: string,
    tmpPath: string,
    origin: BlobOrigin,
    done: (fill: Fill, outcome: FillOutcome) => void,
    options: FillOptions = {},
  ): Fill {
    const fill = new Fill(digest, tmpPath, origin.upstream);
    fill.#budget = options.budget ?? NO_BUDGET;
    fill.#onDisk = options.onDisk;
    fill.#windowBytes = options.windowBytes ?? WINDOW_MAX_BYTES;
    fill.#ownUnwritten = options.ownUnwrittenBytes ?? UNWRITTEN_OWN_BYTES;
    fill.#makeRing = options.ring;
    fill.#onWake = options.onWake;
    fill.#tryDirect = options.direct === true;
    const t0 = performance.now();
    fill.#run(origin).then(
      (size) => done(fill, { ok: true, size, ms: performance.now() - t0 }),
      (err: unknown) => {
        const error =
          err instanceof RegistryError
            ? err
            : new RegistryError(
                'upstream',
                'UNAVAILABLE',
                `fetching blob ${digest} from upstream ${origin.upstream} failed: ${(err as Error).message}`,
                { cause: err },
              );
        fill.#fail(error);
        done(fill, { ok: false, error, bytes: fill.#received, ms: performance.now() - t0 });
      },
    );
    return fill;
  }

  get size(): number | undefined {
    return this.#size;
  }

  get failed(): RegistryError | undefined {
    return this.#error;
  }

  /** Whether the file is being written past the page cache (direct-io.ts): its readers read it so too. */
  get writesDirect(): boolean {
    return this.#direct !== undefined;
  }

  /** Whether any of the file went to disk past the page cache. */
  get wroteDirect(): boolean {
    return this.#wroteDirect;
  }

  /** The shared memory of a fill in ring mode, once the upstream answered. */
  get ring(): SharedRing | undefined {
    return this.#ring;
  }

  available(): number {
    return this.#verified ? this.#received : Math.max(0, this.#received - 1);
  }

  /** What a reader of the file alone may have: bytes on disk, less the last one until the content is verified. */
  onDisk(): number {
    return Math.min(this.#written, this.available());
  }

  get verified(): boolean {
    return this.#verified;
  }

  changed(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    return this.#waiters.wait();
  }

  /** The bytes from `pos` on that are still in memory (up to the end of one chunk and `limit`), if any. */
  fromMemory(pos: number, limit: number): Buffer | undefined {
    if (pos < this.#windowStart) return undefined;
    let start = this.#windowStart;
    for (const chunk of this.#window) {
      const end = start + chunk.length;
      if (pos < end) return chunk.subarray(pos - start, Math.min(chunk.length, limit - start));
      start = end;
    }
    return undefined;
  }

  /** A reader's hold on the file; undefined when the fill failed (the reader gets its error instead). */
  hold(): FileHandle | undefined {
    return this.#error ? undefined : this.#file.hold();
  }

  release(): void {
    if (this.#file.release()) this.#window = [];
  }

  async #run(origin: BlobOrigin): Promise<number> {
    const hasher = digestHasher(this.digest);
    if (!hasher) throw new RegistryError('invalid', 'DIGEST_INVALID', `cannot verify digest ${this.digest}`);
    const up = await origin.get();
    this.#size = up.size;
    // Opened for reading too: readers share this handle with positional reads.
    const fh = await open(this.tmpPath, 'wx+', 0o600).catch((err: NodeJS.ErrnoException) => {
      up.body.on('error', () => undefined).destroy();
      throw this.#local(err);
    });
    this.#file.set(fh);
    if (this.#makeRing) {
      const direct = this.#tryDirect ? await DirectFile.open(this.tmpPath, up.size) : undefined;
      try {
        this.#ring = this.#makeRing(up.size, direct?.place);
      } catch (err) {
        // No memory for the ring: the fill fails, and lets go of the upstream and the handle.
        up.body.on('error', () => undefined).destroy();
        await direct?.close();
        throw err;
      }
      // Direct writes take whole blocks, so the ring must hold whole blocks too.
      if (direct && this.#ring.capacity % DIRECT_BLOCK === 0) this.#direct = direct;
      else await direct?.close();
    }
    this.#started.resolve();
    try {
      await this.#copy(up.body, hasher.hash, hasher.matches);
    } finally {
      await this.#direct?.close();
      this.#direct = undefined;
    }
    // On disk before the cache trusts it: an entry is never served again from a half-written file.
    await fh.datasync().catch((err: NodeJS.ErrnoException) => {
      throw this.#local(err);
    });
    return this.#received;
  }

  /**
   * Hashes the body as it arrives and writes it behind. Chunks are taken one by one as they are read
   * (never concatenated), written in batches while the socket keeps being read, and the upstream
   * pauses only when the disk falls behind by this fill's allowance and the shared budget is spent.
   * Resolves once every byte is written; the content is verified (and readers may finish) as soon as
   * the last byte arrives.
   */
  #copy(body: Readable, hash: Hash, matches: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let writing = false;
      let failed = false;
      const fail = (err: unknown): void => {
        if (failed) return;
        failed = true;
        source.stop();
        reject(
          err instanceof RegistryError
            ? err
            : this.#fault(`broke off after ${this.#received} bytes (${(err as Error).message})`),
        );
      };
      const flush = async (): Promise<void> => {
        writing = true;
        while (this.#mustWrite() && !failed) {
          await this.#writeBehind();
          this.#settleBudget();
          if (source.paused && this.#mayRead()) source.resume();
        }
        writing = false;
        if (this.#bodyEnded && !failed) resolve();
      };
      const source = feed(body, {
        chunk: (buf, transient) => {
          if (failed) return;
          if (this.#size !== undefined && this.#received + buf.length > this.#size) {
            fail(this.#fault(`sent more than the ${this.#size} bytes it declared`));
            return;
          }
          try {
            hash.update(buf);
            if (this.#ring) this.#toRing(this.#ring, buf, transient);
            else this.#window.push(transient ? Buffer.from(buf) : buf);
          } catch (err) {
            // No memory for a copy: this fill fails, not the process.
            fail(
              new RegistryError(
                'unavailable',
                'UNAVAILABLE',
                `the fill of ${this.digest} failed: ${(err as Error).message}`,
                {
                  cause: err,
                },
              ),
            );
            return;
          }
          this.#received += buf.length;
          this.#wakeSoon();
          this.#settleBudget();
          if (!this.#mayRead()) source.pause();
          if (!writing) flush().catch(fail);
        },
        error: fail,
        end: () => {
          if (failed) return;
          if (this.#size !== undefined && this.#received !== this.#size) {
            fail(this.#fault(`ended after ${this.#received} of the ${this.#size} bytes it declared`));
            return;
          }
          if (!matches()) {
            fail(this.#fault('sent content that does not hash to it'));
            return;
          }
          this.#size = this.#received;
          this.#verified = true;
          this.#wakeNow();
          this.#onDisk?.(this);
          this.#complete.resolve();
          this.#bodyEnded = true;
          if (!writing) flush().catch(fail);
        },
      });
    });
  }

  /** Whether bytes received can be written now: direct writes take whole blocks only, until the body ends. */
  #mustWrite(): boolean {
    if (this.#written >= this.#received) return false;
    // A full ring holds whole blocks beyond the disk: a direct write always has one to take then.
    return !this.#direct || this.#bodyEnded || alignDown((this.#ring as SharedRing).hi) > this.#written;
  }

  /** Borrows (or returns) what the unwritten bytes hold beyond this fill's own allowance. */
  #settleBudget(): void {
    if (this.#ring) return;
    const want = Math.max(0, this.#received - this.#written - this.#ownUnwritten);
    this.#budget.used += want - this.#borrowed;
    this.#borrowed = want;
  }

  /** Whether the upstream may be read on: within this fill's allowance, or the shared budget has room. */
  #mayRead(): boolean {
    if (this.#ring) return this.#pending === undefined;
    const unwritten = this.#received - this.#written;
    if (unwritten < this.#ownUnwritten) return true;
    return unwritten < this.#ownUnwritten + this.#budget.limit && this.#budget.used < this.#budget.limit;
  }

  /** Writes every received byte not yet on disk, then lets go of chunks the window no longer needs. */
  async #writeBehind(): Promise<void> {
    if (this.#ring) return this.#writeRing(this.#ring);
    const fh = this.#file.handle as FileHandle;
    const batch: Buffer[] = [];
    let pos = this.#windowStart;
    for (const chunk of this.#window) {
      const end = pos + chunk.length;
      if (end > this.#written) batch.push(pos < this.#written ? chunk.subarray(this.#written - pos) : chunk);
      pos = end;
    }
    const bytes = batch.reduce((n, b) => n + b.length, 0);
    await this.#writeAll(fh, batch, bytes);
    this.#written += bytes;
    this.#onDisk?.(this);
    while (this.#window.length > 0) {
      const first = this.#window[0] as Buffer;
      const firstEnd = this.#windowStart + first.length;
      if (firstEnd > this.#written || this.#received - firstEnd < this.#windowBytes) break;
      this.#window.shift();
      this.#windowStart = firstEnd;
    }
  }

  /**
   * Writes what the ring holds beyond the disk, then moves into the ring what it had no room for.
   * Whole blocks go direct while the device takes them; the tail, and everything once it refused
   * one, through the page cache.
   */
  async #writeRing(ring: SharedRing): Promise<void> {
    this.#takePending(ring);
    const to = ring.hi;
    // Read with `to`: the ring holds the last byte, so the tail short of a block may go through the page cache.
    const last = this.#bodyEnded && this.#pending === undefined;
    const direct = this.#direct;
    const blocks = alignDown(to);
    if (direct && blocks > this.#written) {
      if (await direct.write(ring.views(this.#written, blocks), this.#written, blocks - this.#written)) {
        this.#written = blocks;
        this.#wroteDirect = true;
      } else {
        this.#direct = undefined;
        await direct.close();
      }
    }
    if ((!this.#direct || last) && to > this.#written) {
      await this.#writeAll(this.#file.handle as FileHandle, ring.views(this.#written, to), to - this.#written);
      this.#written = to;
    }
    this.#takePending(ring);
    this.#onDisk?.(this);
  }

  /**
   * Into the ring after whatever waits for room there: a chunk that arrives while bytes are pending
   * (a body that does not pause at once) queues behind them, so the ring, and the file written from
   * it, keep the order the hash saw.
   */
  #toRing(ring: SharedRing, buf: Buffer, transient: boolean): void {
    if (this.#pending) {
      this.#pending = Buffer.concat([this.#pending, buf]);
      return;
    }
    const took = ring.append(buf, this.#written);
    if (took === buf.length) return;
    if (!transient) {
      this.#pending = buf.subarray(took);
      return;
    }
    // A transient chunk is a view of a read buffer that the next read overwrites, so its rest is
    // copied, into memory this fill keeps for it: a new buffer per pause (one per MiB or so) was
    // a third of the fill thread's JavaScript time, in allocations and their collection.
    const rest = buf.length - took;
    if (!this.#overflow || this.#overflow.length < rest)
      this.#overflow = Buffer.allocUnsafeSlow(Math.max(rest, READ_BYTES));
    buf.copy(this.#overflow, 0, took);
    this.#pending = this.#overflow.subarray(0, rest);
  }

  #takePending(ring: SharedRing): void {
    const pending = this.#pending;
    if (!pending) return;
    const took = ring.append(pending, this.#written);
    this.#pending = took < pending.length ? pending.subarray(took) : undefined;
  }

  async #writeAll(fh: FileHandle, batch: Buffer[], bytes: number): Promise<void> {
    try {
      let done = 0;
      let buffers = batch;
      while (done < bytes) {
        const { bytesWritten } = await fh.writev(buffers, this.#written + done);
        // A disk that takes nothing would spin this loop forever; treat it as full.
        if (bytesWritten <= 0) throw Object.assign(new Error('no bytes written'), { code: 'ENOSPC' });
        done += bytesWritten;
        if (done < bytes) buffers = skipBytes(batch, done);
      }
    } catch (err) {
      throw this.#local(err as NodeJS.ErrnoException);
    }
  }

  /** The cache's disk failed, not the upstream: the proxy cannot serve this now. */
  #local(err: NodeJS.ErrnoException): RegistryError {
    return new RegistryError(
      'unavailable',
      'UNAVAILABLE',
      `the blob cache cannot write ${this.digest} (${err.code ?? err.message} at ${this.tmpPath}): free space in cache.blobs.path or lower cache.blobs.maxBytes`,
      { cause: err },
    );
  }

  #fault(what: string): RegistryError {
    return new RegistryError('upstream', 'BLOB_UNKNOWN', `upstream ${this.upstream} ${what} for blob ${this.digest}`);
  }

  #fail(error: RegistryError): void {
    this.#error = error;
    this.#budget.used -= this.#borrowed;
    this.#borrowed = 0;
    this.#started.reject(error);
    this.#complete.reject(error);
    clearTimeout(this.#wakeTimer);
    this.#waiters.fail(error);
    this.release();
    unlink(this.tmpPath).catch(() => undefined);
  }

  /**
   * Readers hear of new bytes a mebibyte at a time (or within 2 ms when the upstream is slow), not
   * per 64 KiB socket chunk: a reader at the head then sends one large write instead of many small
   * ones: small writes to a client that keeps up were a cold fill's largest single cost.
   */
  #wakeSoon(): void {
    if (this.#received - this.#wokenAt >= WAKE_BYTES) this.#wakeNow();
    else this.#wakeTimer ??= setTimeout(() => this.#wakeNow(), WAKE_DELAY_MS);
  }

  #wakeNow(): void {
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#wokenAt = this.#received;
    this.#waiters.wake();
    this.#onWake?.(this);
  }
}
