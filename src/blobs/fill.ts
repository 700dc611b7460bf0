// One upstream fetch of one blob, written to a file as it arrives and hashed on the way. It runs at
// the upstream's speed whatever its readers do: readers read the file, never the socket, so a
// reader that stops stalls only itself. Readers may have every byte written so far except the
// last: that one is released only once the whole content hashes to the digest, so no reader ever
// receives content that does not match complete.
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { RegistryError } from '../oci/errors.ts';
import { digestHasher } from '../oci/digest.ts';
import type { GrowingFile } from './file-reader.ts';
import type { BlobOrigin } from './types.ts';

export type FillOutcome =
  { ok: true; size: number; ms: number } | { ok: false; error: RegistryError; bytes: number; ms: number };

export class Fill implements GrowingFile {
  readonly digest: string;
  readonly tmpPath: string;
  readonly upstream: string;
  /** Resolves once the upstream answered with the blob's headers; rejects with the upstream's error. */
  readonly started: Promise<void>;
  /** Resolves once the content is verified; rejects with why it is not. */
  readonly complete: Promise<void>;
  #size: number | undefined;
  #written = 0;
  #verified = false;
  #error: RegistryError | undefined;
  #fh: FileHandle | undefined;
  /** The fill itself holds the file, and so does each reader; the last one closes it. */
  #holders = 1;
  #waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  readonly #startedHooks: { resolve: () => void; reject: (e: Error) => void };
  readonly #completeHooks: { resolve: () => void; reject: (e: Error) => void };

  private constructor(digest: string, tmpPath: string, upstream: string) {
    this.digest = digest;
    this.tmpPath = tmpPath;
    this.upstream = upstream;
    let started!: { resolve: () => void; reject: (e: Error) => void };
    this.started = new Promise<void>((resolve, reject) => {
      started = { resolve, reject };
    });
    let complete!: { resolve: () => void; reject: (e: Error) => void };
    this.complete = new Promise<void>((resolve, reject) => {
      complete = { resolve, reject };
    });
    // Nobody may be listening when a fill fails: its readers hear it through their own streams.
    this.started.catch(() => undefined);
    this.complete.catch(() => undefined);
    this.#startedHooks = started;
    this.#completeHooks = complete;
  }

  /** Starts fetching; `done` is told the outcome after the file is closed to writing (for the cache to take it). */
  static start(
    digest: string,
    tmpPath: string,
    origin: BlobOrigin,
    done: (fill: Fill, outcome: FillOutcome) => void,
  ): Fill {
    const fill = new Fill(digest, tmpPath, origin.upstream);
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
        done(fill, { ok: false, error, bytes: fill.#written, ms: performance.now() - t0 });
      },
    );
    return fill;
  }

  get size(): number | undefined {
    return this.#size;
  }

  get written(): number {
    return this.#written;
  }

  get failed(): RegistryError | undefined {
    return this.#error;
  }

  available(): number {
    if (this.#verified) return this.#written;
    return Math.max(0, this.#written - 1);
  }

  changed(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** A reader's hold on the file; undefined when the fill failed (the reader gets its error instead). */
  hold(): FileHandle | undefined {
    if (this.#error || !this.#fh) return undefined;
    this.#holders++;
    return this.#fh;
  }

  release(): void {
    if (--this.#holders > 0 || !this.#fh) return;
    const fh = this.#fh;
    this.#fh = undefined;
    fh.close().catch(() => undefined);
  }

  async #run(origin: BlobOrigin): Promise<number> {
    const hasher = digestHasher(this.digest);
    if (!hasher) throw new RegistryError('invalid', 'DIGEST_INVALID', `cannot verify digest ${this.digest}`);
    const up = await origin.get();
    this.#size = up.size;
    // Opened for reading too: readers share this handle with positional reads.
    this.#fh = await open(this.tmpPath, 'wx+', 0o600).catch((err: NodeJS.ErrnoException) => {
      up.body.on('error', () => undefined).destroy();
      throw this.#local(err);
    });
    this.#startedHooks.resolve();
    try {
      for await (const chunk of up.body) {
        const buf = chunk as Buffer;
        if (this.#size !== undefined && this.#written + buf.length > this.#size) {
          throw this.#fault(`sent more than the ${this.#size} bytes it declared`);
        }
        hasher.hash.update(buf);
        await this.#write(buf);
        this.#written += buf.length;
        this.#wake();
      }
    } catch (err) {
      up.body.on('error', () => undefined).destroy();
      throw err instanceof RegistryError
        ? err
        : this.#fault(`broke off after ${this.#written} bytes (${(err as Error).message})`);
    }
    if (this.#size !== undefined && this.#written !== this.#size) {
      throw this.#fault(`ended after ${this.#written} of the ${this.#size} bytes it declared`);
    }
    if (!hasher.matches()) throw this.#fault('sent content that does not hash to it');
    this.#size = this.#written;
    this.#verified = true;
    this.#wake();
    this.#completeHooks.resolve();
    // On disk before the cache trusts it: an entry is never served again from a half-written file.
    await this.#fh.datasync().catch((err: NodeJS.ErrnoException) => {
      throw this.#local(err);
    });
    return this.#written;
  }

  async #write(buf: Buffer): Promise<void> {
    const fh = this.#fh as FileHandle;
    let off = 0;
    try {
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, this.#written + off);
        off += bytesWritten;
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
    this.#startedHooks.reject(error);
    this.#completeHooks.reject(error);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(error);
    this.release();
    unlink(this.tmpPath).catch(() => undefined);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
  }
}
