// A readable over an open file that may still be growing: positional reads up to what the writer
// has made available, waiting for more until the end. Cache entries and fills in progress share it.
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** Bytes per read: large enough that per-chunk work is noise next to copying, small enough to stay flat in memory. */
export const READ_CHUNK_BYTES = 1024 * 1024;

export interface GrowingFile {
  /** How many bytes, from the start, a reader may have now. */
  available(): number;
  /** Resolves when `available()` may have grown or the file is final; rejects when the writer failed. */
  changed(): Promise<void>;
}

export const FINAL: GrowingFile = { available: () => Number.POSITIVE_INFINITY, changed: () => Promise.resolve() };

export interface FileReaderOptions {
  /** First byte to read. */
  start: number;
  /** One past the last byte to read; the file's end when unknown. */
  end: number | undefined;
  /** The file's final length, once known; reading stops there. */
  length: () => number | undefined;
  growing: GrowingFile;
  /** Called once when the reader is done with the handle (end, error or destroy), with the bytes it delivered. */
  release: (bytes: number) => void;
}

export class FileReader extends Readable {
  readonly #fh: FileHandle;
  readonly #opts: FileReaderOptions;
  #pos: number;
  #busy = false;
  #released = false;
  #delivered = 0;

  constructor(fh: FileHandle, opts: FileReaderOptions) {
    super({ highWaterMark: READ_CHUNK_BYTES });
    this.#fh = fh;
    this.#opts = opts;
    this.#pos = opts.start;
  }

  override _read(): void {
    if (this.#busy) return;
    this.#busy = true;
    this.#pump().then(
      () => {
        this.#busy = false;
      },
      (err: Error) => {
        this.#busy = false;
        this.destroy(err);
      },
    );
  }

  async #pump(): Promise<void> {
    for (;;) {
      if (this.destroyed) return;
      const length = this.#opts.length();
      const end = Math.min(this.#opts.end ?? Number.POSITIVE_INFINITY, length ?? Number.POSITIVE_INFINITY);
      if (this.#pos >= end) {
        this.push(null);
        return;
      }
      const limit = Math.min(end, this.#opts.growing.available());
      if (this.#pos >= limit) {
        await this.#opts.growing.changed();
        continue;
      }
      const want = Math.min(limit - this.#pos, READ_CHUNK_BYTES);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.#fh.read(buf, 0, want, this.#pos);
      if (bytesRead === 0) throw new Error(`blob file ended at byte ${this.#pos}, before its declared length`);
      this.#pos += bytesRead;
      this.#delivered += bytesRead;
      if (!this.push(bytesRead === want ? buf : buf.subarray(0, bytesRead))) return;
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#release();
    cb(err);
  }

  override push(chunk: Buffer | null): boolean {
    if (chunk === null) this.#release();
    return super.push(chunk);
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#opts.release(this.#delivered);
  }
}
