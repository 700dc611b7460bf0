// A fill's newest bytes in memory both threads see: the fill thread appends what it has hashed and
// writes the disk from here; the main thread's readers copy from here instead of reading the file
// the disk has not caught up with. The fill thread never waits for a reader: a slot is reused once
// its bytes are on disk, whoever still wants them; a reader behind the ring reads the file, which
// by then holds those bytes.
//
// The reader does not lock. The writer publishes the oldest position still in the ring (`lo`)
// before it overwrites anything older, and the reader checks `lo` again after its copy: if `lo`
// passed the copy's start meanwhile, the copy may be torn and is thrown away (a seqlock). Plain
// byte copies may be reordered around a sequentially consistent load or store on weakly ordered
// CPUs (arm64; x86 keeps stores in order, and loads in order), so both sides use read-modify-
// writes, which order the copies on both sides of them: the writer exchanges `lo` before it
// overwrites, the reader adds 0 to it after its copy (Boehm, "Can seqlocks get along with
// programming language memory models?", 2012).

/** [lo, hi): positions held, as bytes of the blob; `hi` is also every byte hashed so far. */
const LO = 0;
const HI = 1;
/** 1 while a reader waits for `hi` to grow: the writer tells the reader's thread only then. */
const WAITING = 2;
/** Where the data starts in the buffer, and how much of it there is: set once, by the side that made the ring. */
const DATA_AT = 3;
const CAPACITY = 4;
const HEADER_BYTES = 40;
/**
 * Room after the header for the data to start where a direct write can take it from: the memory
 * of a direct write must be aligned (to 512 bytes or a page, by device), and where a buffer's
 * memory starts is up to the allocator (a page and 16 bytes with glibc), so the writer finds the
 * place by trying (direct-io.ts).
 */
export const ALIGN_SLACK = 4096;

/** Picks where in `buffer`, between `from` and `to`, the data starts; `from` when it cannot tell. */
export type PlaceData = (buffer: SharedArrayBuffer, from: number, to: number) => number;

export class SharedRing {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly #ctl: BigInt64Array;
  readonly #data: Buffer;

  /**
   * A new ring of `capacity` bytes, or one over the memory of `buffer` (the other thread's). With
   * `place`, the new ring's data starts where it says, within `ALIGN_SLACK` bytes after the header.
   */
  constructor(capacityOrBuffer: number | SharedArrayBuffer, place?: PlaceData) {
    if (typeof capacityOrBuffer === 'number') {
      const capacity = Math.max(1, capacityOrBuffer);
      const slack = place ? ALIGN_SLACK : 0;
      this.buffer = new SharedArrayBuffer(HEADER_BYTES + slack + capacity);
      this.#ctl = new BigInt64Array(this.buffer, 0, 5);
      const at = place ? place(this.buffer, HEADER_BYTES, HEADER_BYTES + slack) : HEADER_BYTES;
      if (!Number.isInteger(at) || at < HEADER_BYTES || at > HEADER_BYTES + slack)
        throw new Error(`internal: ring data placed at ${at}, outside ${HEADER_BYTES}..${HEADER_BYTES + slack}`);
      Atomics.store(this.#ctl, DATA_AT, BigInt(at));
      Atomics.store(this.#ctl, CAPACITY, BigInt(capacity));
    } else {
      this.buffer = capacityOrBuffer;
      this.#ctl = new BigInt64Array(this.buffer, 0, 5);
    }
    this.capacity = Number(Atomics.load(this.#ctl, CAPACITY));
    this.#data = Buffer.from(this.buffer, Number(Atomics.load(this.#ctl, DATA_AT)), this.capacity);
  }

  /** One past the newest byte held (every byte appended so far). */
  get hi(): number {
    return Number(Atomics.load(this.#ctl, HI));
  }

  /** The oldest byte still held. */
  get lo(): number {
    return Number(Atomics.load(this.#ctl, LO));
  }

  /**
   * Appends as much of `chunk` as fits without overwriting a byte not yet on disk (`written`: the
   * bytes on disk, from the start); returns how many bytes it took.
   */
  append(chunk: Uint8Array, written: number): number {
    const hi = this.hi;
    const n = Math.min(chunk.length, written + this.capacity - hi);
    if (n <= 0) return 0;
    const end = hi + n;
    // Published before the overwrite: a reader that copies from the slots about to change sees it.
    if (end - this.capacity > this.lo) Atomics.exchange(this.#ctl, LO, BigInt(end - this.capacity));
    const at = hi % this.capacity;
    const first = Math.min(n, this.capacity - at);
    copyInto(this.#data, at, chunk, 0, first);
    if (first < n) copyInto(this.#data, 0, chunk, first, n);
    Atomics.store(this.#ctl, HI, BigInt(end));
    return n;
  }

  /**
   * A reader is about to wait for more than `seen` (the `hi` it read): false when more is there
   * already. The flag is set before `hi` is read again, and the writer reads the flag after it
   * moved `hi`, so one of them sees the other: no wake-up is lost.
   */
  willWait(seen: number): boolean {
    Atomics.store(this.#ctl, WAITING, 1n);
    if (this.hi === seen) return true;
    Atomics.store(this.#ctl, WAITING, 0n);
    return false;
  }

  /** Whether a reader waits (and clears the flag: the caller wakes it). */
  takeWaiting(): boolean {
    return Atomics.exchange(this.#ctl, WAITING, 0n) === 1n;
  }

  /** The held bytes [from, to) as views of the ring (two when they wrap), for the disk write. */
  views(from: number, to: number): Buffer[] {
    if (from < this.lo || to > this.hi || from >= to) return [];
    const at = from % this.capacity;
    const n = to - from;
    const first = Math.min(n, this.capacity - at);
    const out = [this.#data.subarray(at, at + first)];
    if (first < n) out.push(this.#data.subarray(0, n - first));
    return out;
  }

  /**
   * Copies the held bytes from `pos` (below `limit`) into `into`; returns how many, 0 when `pos`
   * is no longer (or not yet) held. Runs in the reader's thread while the writer appends.
   */
  copyOut(pos: number, limit: number, into: Buffer): number {
    if (pos < this.lo) return 0;
    const n = Math.min(limit, this.hi) - pos;
    if (n <= 0) return 0;
    const take = Math.min(n, into.length);
    const at = pos % this.capacity;
    const first = Math.min(take, this.capacity - at);
    copyInto(into, 0, this.#data, at, at + first);
    if (first < take) copyInto(into, first, this.#data, 0, take - first);
    // Overwritten while copied: the file has those bytes now.
    return pos < Number(Atomics.add(this.#ctl, LO, 0n)) ? 0 : take;
  }
}

/**
 * Copies `src[from, to)` to `dst` at `at` with memmove. Node's Buffer#copy of a whole source takes
 * TypedArray#set instead, which to or from a SharedArrayBuffer copies word by word: 6.4 GB/s
 * against 16 GB/s here, and a fifth of the fill thread's time in a cold fetch's profile
 * (docs/decisions.md, "Where a cold fetch's time goes"). So the last byte is copied apart.
 */
export function copyInto(dst: Buffer, at: number, src: Uint8Array, from: number, to: number): void {
  const n = to - from;
  if (n <= 0) return;
  if (n > 1) Buffer.prototype.copy.call(src, dst, at, from, to - 1);
  dst[at + n - 1] = src[to - 1] as number;
}
