// Sends part of an open file, which may still be growing, to a writable (the client's response):
// positional reads up to what the writer has made available, waiting for more until the end.
// Cache entries and fills in progress share it. Reads run one chunk ahead of the socket (up to
// three for a file read direct: ReadAhead) into a few reused buffers (a buffer goes back once the
// socket has taken it; buffers outlive the send for the next one), so serving a blob allocates
// nothing and the disk and the socket work at the same time.
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { alignDown, DIRECT_SLACK, DirectReader } from './direct-io.ts';

/** Bytes per read: large enough that per-chunk work is noise next to copying. */
export const READ_CHUNK_BYTES = 1024 * 1024;
/** Buffers per send: one being read, the rest queued at the socket. */
const POOL_SIZE = 4;

export interface GrowingFile {
  /** How many bytes, from the start, a reader may have now. */
  available(): number;
  /** Resolves when `available()` may have grown or the file is final; rejects when the writer failed. */
  changed(): Promise<void>;
  /** Bytes from `pos` (below `limit`) the writer still holds in memory, sparing a read of the file. */
  fromMemory?(pos: number, limit: number): Buffer | undefined;
  /** Copies bytes from `pos` (below `limit`) the writer holds in shared memory into `into`; 0 when it holds none there. */
  copyOut?(pos: number, limit: number, into: Buffer): number;
  /** What is on disk was written past the page cache (direct-io.ts): read it so too. */
  readonly readsDirect?: boolean;
  /** Bytes from the start that are on disk now, which the file may be read ahead over; `available()` when absent. */
  onDisk?(): number;
}

export const FINAL: GrowingFile = { available: () => Number.POSITIVE_INFINITY, changed: () => Promise.resolve() };

export interface SendOptions {
  /** First byte to send. */
  start: number;
  /** One past the last byte to send; the file's end when undefined. */
  end: number | undefined;
  /** The file's final length, once known; sending stops there. */
  length: () => number | undefined;
  growing: GrowingFile;
  /** A client that takes no bytes for this long while a chunk waits is cut off. */
  writeTimeoutMs: number;
}

/** Sends the range and resolves with the bytes sent; rejects when the file, its writer or the client fails. */
export async function sendFile(fh: FileHandle, out: Writable, opts: SendOptions): Promise<number> {
  const pool = new BufferPool(POOL_SIZE);
  const file = new FileReads(fh, opts.growing.readsDirect === true);
  try {
    return await send(file, out, opts, pool);
  } finally {
    pool.close();
    await file.close();
  }
}

/** Positional reads of the file: direct while the file was written so and the device takes them, else through the page cache. */
class FileReads {
  readonly #fh: FileHandle;
  #direct: Promise<DirectReader | undefined> | undefined;
  /** Reads go direct, as far as is known: reads ahead only then (ReadAhead). */
  #readsDirect: boolean;

  constructor(fh: FileHandle, direct: boolean) {
    this.#fh = fh;
    this.#readsDirect = direct;
    if (direct) {
      this.#direct = DirectReader.reopen(fh);
      void this.#direct.then((d) => (this.#readsDirect &&= d !== undefined));
    }
  }

  get readsDirect(): boolean {
    return this.#readsDirect;
  }

  /** The bytes from `pos` (below `limit`, at most a chunk) read into `buf`; empty at the file's end. */
  async read(buf: Buffer, pos: number, limit: number): Promise<Buffer> {
    const direct = await this.#direct;
    if (direct) {
      const got = await direct.read(buf, pos, limit);
      if (got) return got;
      this.#direct = undefined;
      this.#readsDirect = false;
      await direct.close();
    }
    const { bytesRead } = await this.#fh.read(buf, 0, Math.min(limit - pos, READ_CHUNK_BYTES), pos);
    return buf.subarray(0, bytesRead);
  }

  /** Where a read from `pos` below `limit` ends, when the file gives all it asks for. */
  endOf(pos: number, limit: number): number {
    return Math.min(limit, this.#readsDirect ? alignDown(pos) + READ_CHUNK_BYTES : pos + READ_CHUNK_BYTES);
  }

  async close(): Promise<void> {
    await (await this.#direct)?.close();
  }
}

async function send(file: FileReads, out: Writable, opts: SendOptions, pool: BufferPool): Promise<number> {
  let pos = opts.start;
  let sent = 0;
  const ahead = new ReadAhead(file);
  /** The file read under way (with its reads ahead): the send ends only after it, never after a wait for the writer. */
  let reading: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const end = (): number => Math.min(opts.end ?? Number.POSITIVE_INFINITY, opts.length() ?? Number.POSITIVE_INFINITY);

  /** The next bytes: slices still in the writer's memory (several at once), or one pooled buffer read from the file. */
  const readNext = async (): Promise<{ parts: Buffer[]; pooled?: Buffer } | undefined> => {
    for (;;) {
      if (stopped || pos >= end()) return undefined;
      const limit = Math.min(end(), opts.growing.available());
      if (pos < limit) {
        const parts: Buffer[] = [];
        let bytes = 0;
        for (let mem = opts.growing.fromMemory?.(pos, limit); mem; mem = opts.growing.fromMemory?.(pos, limit)) {
          parts.push(mem);
          pos += mem.length;
          bytes += mem.length;
          if (bytes >= READ_CHUNK_BYTES || pos >= limit) break;
        }
        if (parts.length > 0) return { parts };
        const buf = await pool.take(opts.writeTimeoutMs);
        if (stopped) {
          pool.give(buf);
          return undefined;
        }
        const copied = opts.growing.copyOut?.(pos, limit, buf.subarray(0, READ_CHUNK_BYTES)) ?? 0;
        if (copied > 0) {
          pos += copied;
          return { parts: [buf.subarray(0, copied)], pooled: buf };
        }
        const pending = ahead.read(buf, pos, limit, Math.min(limit, opts.growing.onDisk?.() ?? limit));
        reading = pending.catch(() => undefined);
        const read = await pending;
        if (read.view.length === 0) {
          pool.give(read.buf);
          throw new Error(`blob file ended at byte ${pos}, before its declared length`);
        }
        pos += read.view.length;
        return { parts: [read.view], pooled: read.buf };
      }
      await opts.growing.changed();
    }
  };

  let next = readNext();
  try {
    await pump();
  } finally {
    // Reads still under way write into buffers of this send's: they end before the file closes.
    // A next chunk waiting for the writer is not waited for: it sees `stopped` and reads nothing.
    stopped = true;
    next.catch(() => undefined);
    await reading;
    await ahead.drain();
  }
  return sent;

  async function pump(): Promise<void> {
    for (;;) {
      const chunk = await next;
      if (!chunk) break;
      next = readNext();
      // Nobody may await `next` if the client fails first: its error must not go unheard.
      next.catch(() => undefined);
      if (out.destroyed) throw new Error('client went away');
      let ok = true;
      // Corked, several slices leave in one system call.
      out.cork();
      for (const [i, part] of chunk.parts.entries()) {
        const last = i === chunk.parts.length - 1;
        sent += part.length;
        ok = out.write(part, last && chunk.pooled ? () => pool.give(chunk.pooled as Buffer) : undefined) && ok;
      }
      out.uncork();
      if (!ok) await drained(out, opts.writeTimeoutMs);
    }
  }
}

/**
 * Reads of the file behind the writer's memory, up to three chunks ahead of the one asked for: a
 * cold reader that fell behind the ring reads a file written past the page cache, where one read
 * at a time (1-2 ms per MiB on this VM's disk) held it to ~300 MiB/s while the fill ran ahead.
 * Only bytes already on disk are read ahead; reads that are not the next ones asked for are let go.
 */
class ReadAhead {
  readonly #file: FileReads;
  #queue: { pos: number; end: number; buf: Buffer; read: Promise<Buffer> }[] = [];

  constructor(file: FileReads) {
    this.#file = file;
  }

  /**
   * The bytes from `pos` (below `limit`): read into `buf`, or taken from a read already made, whose
   * buffer then takes `buf`'s place (`buf` goes to the reads ahead). `onDisk` bounds the reads ahead.
   */
  async read(buf: Buffer, pos: number, limit: number, onDisk: number): Promise<{ view: Buffer; buf: Buffer }> {
    const queued = this.#queue[0]?.pos === pos ? this.#queue.shift() : undefined;
    let got: { view: Buffer; buf: Buffer };
    if (queued) {
      // The queued read's buffer becomes this send's, and `buf` goes to the reads ahead instead.
      giveAheadBuffer(buf);
      got = { view: await queued.read, buf: queued.buf };
      if (got.view.length !== queued.end - queued.pos) await this.drain();
    } else {
      await this.drain();
      got = { view: await this.#file.read(buf, pos, limit), buf };
    }
    this.#topUp(pos + got.view.length, onDisk);
    return got;
  }

  #topUp(next: number, onDisk: number): void {
    // Through the page cache, one read at a time keeps up with the socket (warm hits: 1.3-2.3x direct).
    if (!this.#file.readsDirect) return;
    let at = this.#queue.at(-1)?.end ?? next;
    while (this.#queue.length < READ_AHEAD && at < onDisk) {
      const buf = takeAheadBuffer();
      if (!buf) return;
      const limit = Math.min(onDisk, at + READ_CHUNK_BYTES);
      const read = this.#file.read(buf, at, limit);
      read.catch(() => undefined);
      const end = this.#file.endOf(at, limit);
      this.#queue.push({ pos: at, end, buf, read });
      at = end;
    }
  }

  /** Waits for the reads still queued and gives their buffers back. */
  async drain(): Promise<void> {
    const queue = this.#queue;
    this.#queue = [];
    for (const q of queue) {
      await q.read.catch(() => undefined);
      giveAheadBuffer(q.buf);
    }
  }
}

const READ_AHEAD = 3;
/**
 * Reads ahead have buffers of their own, shared by all sends: at most eight in flight. Taken from
 * each send's pool instead, they made every send hold its four, and twenty readers of one cold fill
 * took the RSS from 148 to 213 MiB (188 reading none ahead).
 */
const READS_AHEAD_MAX = 8;
const aheadSpare: Buffer[] = [];
let aheadOut = 0;

function takeAheadBuffer(): Buffer | undefined {
  if (aheadOut >= READS_AHEAD_MAX) return undefined;
  aheadOut++;
  return aheadSpare.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK_BYTES + DIRECT_SLACK);
}

/** A buffer back to the reads ahead: one they lent, or one a send swapped for a read made ahead. */
function giveAheadBuffer(b: Buffer): void {
  aheadOut--;
  if (aheadSpare.length < READS_AHEAD_MAX) aheadSpare.push(b);
  else freeNow(b);
}

/**
 * Read buffers no send holds now, kept for the next sends: serving a blob allocates nothing, where
 * a pool of its own per request made every small GET leave 4 MiB of garbage outside the heap.
 */
const spare: Buffer[] = [];
const SPARE_MAX = 8;

/** Lets go of the spare buffers (the proxy is at rest: src/ops/idle-gc.ts). */
export function releaseSpareBuffers(): void {
  for (const b of spare.splice(0)) freeNow(b);
  for (const b of aheadSpare.splice(0)) freeNow(b);
}

/** At most `max` buffers for one send; one goes back once the socket has taken what was read into it. */
class BufferPool {
  readonly #max: number;
  /** Buffers this send holds: free here, being read into, or queued at the socket. */
  #lent = 0;
  readonly #free: Buffer[] = [];
  #waiting: ((b: Buffer) => void)[] = [];
  #closed = false;

  constructor(max: number) {
    this.#max = max;
  }

  /**
   * A buffer, once one is free. All of them waiting at the socket for `timeoutMs` means a client
   * that takes no bytes: small writes never fill the socket's buffer, so only this notices it.
   */
  take(timeoutMs: number): Promise<Buffer> {
    const b = this.#free.pop();
    if (b) return Promise.resolve(b);
    if (this.#lent < this.#max) {
      this.#lent++;
      // With room for a direct read's alignment (direct-io.ts).
      return Promise.resolve(spare.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK_BYTES + DIRECT_SLACK));
    }
    return new Promise((resolve, reject) => {
      const waiter = (buf: Buffer): void => {
        clearTimeout(timer);
        resolve(buf);
      };
      const timer = setTimeout(() => {
        this.#waiting = this.#waiting.filter((w) => w !== waiter);
        reject(new Error(`client took no bytes for ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.push(waiter);
    });
  }

  /** Only for a buffer nothing refers to any more (its write called back, or nothing was read into it). */
  give(b: Buffer): void {
    if (this.#closed) {
      this.#retire(b);
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter) waiter(b);
    else this.#free.push(b);
  }

  /** The send ended: free buffers go to the spares now, the ones still at the socket when it takes them. */
  close(): void {
    this.#closed = true;
    for (const b of this.#free.splice(0)) this.#retire(b);
  }

  #retire(b: Buffer): void {
    this.#lent--;
    if (spare.length < SPARE_MAX) spare.push(b);
    else freeNow(b);
  }
}

/**
 * Lets go of a read buffer's memory now rather than at the next collection: nothing refers to it
 * (its socket write called back). Twenty sends of one blob left ~70 MiB of such buffers mapped
 * until V8 next collected, which could be the next phase's peak.
 */
function freeNow(b: Buffer): void {
  (b.buffer as ArrayBuffer).transfer(0);
}

function drained(out: Writable, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      out.off('drain', onDrain);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new Error('client went away'));
    const timer = setTimeout(() => done(new Error(`client took no bytes for ${timeoutMs} ms`)), timeoutMs);
    out.on('drain', onDrain);
    out.on('close', onClose);
  });
}
