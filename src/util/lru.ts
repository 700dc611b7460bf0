// A bounded least-recently-used map that grows with use. It replaces lru-cache, which allocates
// its arrays for `max` entries when it is built: with the default cache.maxEntries (100,000) each
// of the proxy's caches held 1.5-3 MiB before its first entry, about 20 MiB of the memory at rest
// of a proxy that had served three images (docs/decisions.md, "Memory at rest"). A Map keeps
// insertion order, so moving an entry to the end when it is read leaves the least recently used
// one first.

export interface LruOptions {
  /** At most this many entries; setting one more drops the least recently used. */
  max: number;
  /** Milliseconds an entry lives unless its set() says otherwise; 0 or absent: until evicted. */
  ttl?: number;
  /** The clock, in milliseconds; monotonic by default, so a wall-clock step expires nothing early. */
  now?: () => number;
}

interface Entry<V> {
  value: V;
  /** When it expires on the clock; Infinity for never. */
  expires: number;
}

export class Lru<K, V> {
  readonly #max: number;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #entries = new Map<K, Entry<V>>();

  constructor(opts: LruOptions) {
    if (!Number.isSafeInteger(opts.max) || opts.max < 1)
      throw new RangeError(`Lru max must be a positive integer: ${opts.max}`);
    this.#max = opts.max;
    this.#ttl = opts.ttl ?? 0;
    this.#now = opts.now ?? (() => performance.now());
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The live value, now the most recently used; an expired entry is dropped and reads as absent. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.expires <= this.#now()) return undefined;
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** `ttl` (milliseconds) overrides the cache's for this entry; 0 keeps it until evicted. */
  set(key: K, value: V, opts?: { ttl?: number }): void {
    const ttl = opts?.ttl ?? this.#ttl;
    this.#entries.delete(key);
    this.#entries.set(key, { value, expires: ttl > 0 ? this.#now() + ttl : Infinity });
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value as K);
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
