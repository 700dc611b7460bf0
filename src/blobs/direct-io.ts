// Direct writes (O_DIRECT) of a fill's ring to its file. A cold fill's bytes through the page
// cache cost the kernel a new page each, and on a VM whose free memory goes back to the host
// (virtio-balloon free page reporting) each new page is a fault in the host: 0.45-0.76 CPU-s per
// 256 MiB here, the largest single cost of a cold fetch (docs/decisions.md, "Where a cold fetch's
// time goes"). A direct write takes the bytes from the ring itself. Where new pages are cheap, the
// page cache is the better path (no second read to warm it, no wait on a slow disk), so `auto`
// writes direct only on such a VM (cache.blobs.directWrites). Everything is best effort: a
// filesystem that refuses direct I/O, a place in memory the device will not take, or a write it
// refuses, and the fill writes through the page cache as before.
import { constants, readdirSync, readFileSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { DirectWritesMode } from '../config/types.ts';
import type { PlaceData } from './ring.ts';
import { skipBytes } from '../util/buffer-list.ts';

/** Positions and lengths of direct writes are multiples of this: a page holds every device's logical block. */
export const DIRECT_BLOCK = 4096;
/** Smaller blobs are written through the page cache: a direct write saves nothing worth the open and the probe. */
export const DIRECT_MIN_BYTES = 4 * 1024 * 1024;
/** Undefined where the platform has no direct I/O. */
const O_DIRECT = (constants as Record<string, number | undefined>).O_DIRECT;
/** Where in a ring's buffer, and in a read buffer, a direct write or read was last taken. */
let lastWritePlace = -1;
let lastReadPlace = -1;

/**
 * Offsets between `from` and `to` to try for an aligned place, `last` (the one that worked
 * before) first: buffers of one size tend to start alike, and allocators align to 16 bytes at least.
 */
function* placesToTry(from: number, to: number, last: number): Generator<number> {
  if (last >= from && last <= to) yield last;
  for (let at = from + ((16 - (from % 16)) % 16); at <= to; at += 16) if (at !== last) yield at;
}

export const alignDown = (n: number): number => n - (n % DIRECT_BLOCK);

/** A second handle on a fill's file for direct writes. */
export class DirectFile {
  readonly #fh: FileHandle;

  private constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  /** A direct handle on `path`, or undefined: a small blob, no O_DIRECT here, or a filesystem that refuses it (tmpfs). */
  static async open(path: string, size: number | undefined): Promise<DirectFile | undefined> {
    if (size === undefined || size < DIRECT_MIN_BYTES || O_DIRECT === undefined) return undefined;
    const fh = await open(path, constants.O_WRONLY | O_DIRECT).catch(() => undefined);
    return fh && new DirectFile(fh);
  }

  /**
   * Finds where in the ring's buffer the device takes a direct write from, by trying one block at
   * the file's start (which the fill writes over with its first bytes). `from` when no place does:
   * the writes then fail at once and the fill goes on through the page cache.
   */
  readonly place: PlaceData = (buffer, from, to) => {
    const tried = (at: number): boolean => {
      if (at < from || at + DIRECT_BLOCK > buffer.byteLength) return false;
      try {
        writeSync(this.#fh.fd, new Uint8Array(buffer, at, DIRECT_BLOCK), 0, DIRECT_BLOCK, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (const at of placesToTry(from, to, lastWritePlace))
      if (tried(at)) {
        lastWritePlace = at;
        return at;
      }
    return from;
  };

  /** Writes `bytes` (whole blocks) at `pos`; false when the device refused, and nothing of it may be trusted on disk. */
  async write(buffers: Uint8Array[], pos: number, bytes: number): Promise<boolean> {
    try {
      let done = 0;
      while (done < bytes) {
        const { bytesWritten } = await this.#fh.writev(done === 0 ? buffers : skipBytes(buffers, done), pos + done);
        if (bytesWritten <= 0 || bytesWritten % DIRECT_BLOCK !== 0) return false;
        done += bytesWritten;
      }
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return this.#fh.close().catch(() => undefined);
  }
}

/**
 * Direct reads of a file a fill wrote direct: through the page cache, each 4 KiB read back would
 * cost the new page the direct write spared. Reads whole blocks into the aligned part of the
 * caller's buffer and hands back the bytes asked for.
 */
export class DirectReader {
  readonly #fh: FileHandle;
  /** Where in each buffer the device takes a direct read into: buffers are reused, so found once each. */
  readonly #places = new WeakMap<Buffer, number>();

  private constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  /** The file `fh` is open on (under whatever name it has now), opened again for direct reads; undefined where that fails. */
  static async reopen(fh: FileHandle): Promise<DirectReader | undefined> {
    if (O_DIRECT === undefined) return undefined;
    const direct = await open(`/proc/self/fd/${fh.fd}`, constants.O_RDONLY | O_DIRECT).catch(() => undefined);
    return direct && new DirectReader(direct);
  }

  /**
   * Up to `limit` of the bytes from `pos`, read into `buf` (which has `DIRECT_SLACK` bytes more than
   * any read asks for); an empty view at the file's end, undefined when the device refuses.
   */
  async read(buf: Buffer, pos: number, limit: number): Promise<Buffer | undefined> {
    const from = alignDown(pos);
    const room = buf.length - DIRECT_SLACK;
    const len = alignUp(Math.min(limit, from + room) - from);
    const at = await this.#placeIn(buf, from);
    if (at === undefined) return undefined;
    try {
      const { bytesRead } = await this.#fh.read(buf, at, len, from);
      const end = Math.min(from + bytesRead, limit);
      return buf.subarray(at + pos - from, at + Math.max(pos, end) - from);
    } catch {
      return undefined;
    }
  }

  close(): Promise<void> {
    return this.#fh.close().catch(() => undefined);
  }

  async #placeIn(buf: Buffer, pos: number): Promise<number | undefined> {
    const known = this.#places.get(buf);
    if (known !== undefined) return known;
    const tried = async (at: number): Promise<boolean> =>
      this.#fh.read(buf, at, DIRECT_BLOCK, pos).then(
        () => true,
        () => false,
      );
    for (const at of placesToTry(0, DIRECT_BLOCK - 16, lastReadPlace))
      if (await tried(at)) {
        lastReadPlace = at;
        this.#places.set(buf, at);
        return at;
      }
    return undefined;
  }
}

/** Bytes a buffer for direct reads has beyond what is asked of it: room to start at an aligned place and end on a whole block. */
export const DIRECT_SLACK = 2 * DIRECT_BLOCK;
const alignUp = (n: number): number => alignDown(n + DIRECT_BLOCK - 1);

/**
 * Reads files that fills wrote direct back through the page cache once each fill is done, one at
 * a time: a cache hit soon after then reads memory, not the disk. The new pages cost what they
 * would have cost the fill, but after its clients were served, as distribution's proxy stores a
 * blob after serving it. Best effort: a read that fails ends that file's warming.
 */
export class PageCacheWarmer {
  readonly #queue: { fh: FileHandle; size: number; done: () => void }[] = [];
  #running = false;

  /** Warms `size` bytes of `fh`, then calls `done` (which lets go of the handle). */
  add(fh: FileHandle, size: number, done: () => void): void {
    this.#queue.push({ fh, size, done });
    if (!this.#running) void this.#run();
  }

  async #run(): Promise<void> {
    this.#running = true;
    const buf = Buffer.allocUnsafeSlow(WARM_CHUNK_BYTES);
    for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
      try {
        for (let pos = 0; pos < next.size;) {
          const { bytesRead } = await next.fh.read(buf, 0, Math.min(buf.length, next.size - pos), pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
        }
      } catch {
        // Best effort: the file was read or it was not; a hit reads the disk then.
      } finally {
        next.done();
      }
    }
    this.#running = false;
  }
}

const WARM_CHUNK_BYTES = 1024 * 1024;

const VIRTIO_DEVICES = '/sys/bus/virtio/devices';
const VIRTIO_ID_BALLOON = 5;
const VIRTIO_BALLOON_F_REPORTING = 5;

/**
 * Whether this machine hands the memory it frees back to its host (virtio-balloon free page
 * reporting): a page the host took back costs a fault in the host when it is touched again, so each
 * new page-cache page a cold fill writes is dear. Read from the negotiated features in sysfs.
 */
export function reportsFreePages(devices = VIRTIO_DEVICES): boolean {
  let names: string[];
  try {
    names = readdirSync(devices);
  } catch {
    return false;
  }
  return names.some((name) => {
    try {
      const id = Number.parseInt(readFileSync(join(devices, name, 'device'), 'utf8').trim(), 16);
      const features = readFileSync(join(devices, name, 'features'), 'utf8');
      return id === VIRTIO_ID_BALLOON && features[VIRTIO_BALLOON_F_REPORTING] === '1';
    } catch {
      return false;
    }
  });
}

/** Whether cold fills write direct (`cache.blobs.directWrites`), and why, for the log. */
export function directWritesFor(mode: DirectWritesMode, freePagesReported: boolean): { direct: boolean; why: string } {
  if (mode === 'always') return { direct: true, why: 'cache.blobs.directWrites is always' };
  if (mode === 'never') return { direct: false, why: 'cache.blobs.directWrites is never' };
  return freePagesReported
    ? { direct: true, why: 'this VM reports free memory to its host: new page-cache pages cost a host fault' }
    : { direct: false, why: 'new page-cache pages are cheap here' };
}
