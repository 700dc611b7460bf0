// The blob cache on local disk: content-addressed files, one per digest whatever repositories
// reference it, written once (verified fills are renamed into place) and evicted by last use.
// It never decides what may be served: the gate checks the permit before asking for bytes.
//
// Layout under `dir`: `<algorithm>/<first two hex>/<hex>` for entries, `tmp/` for fills in progress.
// Last use is the file's mtime, so a restart keeps the order. Removing a file that a request is
// reading does not break that request (POSIX keeps an unlinked file until its last reader closes it),
// so eviction never interrupts a download.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest } from '../oci/reference.ts';

export interface CacheEntry {
  digest: string;
  size: number;
  /** Epoch ms of the last time the entry was served or written. */
  lastUsed: number;
}

export interface CacheEvents {
  evicted?(entry: CacheEntry): void;
  changed?(stats: CacheStats): void;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
}

export interface CacheOptions {
  dir: string;
  maxBytes: number;
  events?: CacheEvents;
  now?: () => number;
}

/** Last use is written to disk at most this often per entry: a hit must not cost a syscall. */
const TOUCH_PERSIST_MS = 60_000;
const HEX = /^[a-f0-9]+$/;

export class BlobCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #events: CacheEvents;
  readonly #now: () => number;
  /** In last-use order, least recent first (a touch moves an entry to the end). */
  readonly #entries = new Map<string, CacheEntry>();
  /** When each entry's last use was last written to disk. */
  readonly #persisted = new Map<string, number>();
  #bytes = 0;

  constructor(opts: CacheOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.#events = opts.events ?? {};
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Creates the directories and reads the entries on disk. `cleanTmp` removes fills a crash left
   * behind: only the proxy itself may do that, never a command run beside it.
   */
  async open(opts: { cleanTmp: boolean } = { cleanTmp: true }): Promise<void> {
    await mkdir(join(this.dir, 'tmp'), { recursive: true });
    if (opts.cleanTmp) {
      for (const name of await readdir(join(this.dir, 'tmp'))) await rm(join(this.dir, 'tmp', name), { force: true });
    }
    const found: CacheEntry[] = [];
    for (const algorithm of await readdir(this.dir)) {
      if (algorithm === 'tmp') continue;
      const algDir = join(this.dir, algorithm);
      for (const prefix of await readdirOrEmpty(algDir)) {
        for (const hex of await readdirOrEmpty(join(algDir, prefix))) {
          const digest = `${algorithm}:${hex}`;
          if (!HEX.test(hex) || typeof parseDigest(digest) === 'string' || !hex.startsWith(prefix)) continue;
          const s = await stat(join(algDir, prefix, hex)).catch(() => undefined);
          if (s?.isFile()) found.push({ digest, size: s.size, lastUsed: s.mtimeMs });
        }
      }
    }
    found.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of found) this.#add(e);
    this.#changed();
  }

  pathOf(digest: string): string {
    const parsed = parseDigest(digest);
    if (typeof parsed === 'string') throw new Error(`internal: cache path of an invalid digest: ${parsed}`);
    return join(this.dir, parsed.algorithm, parsed.hex.slice(0, 2), parsed.hex);
  }

  /** A fresh path for a fill in progress. */
  tmpPath(): string {
    return join(this.dir, 'tmp', randomUUID());
  }

  /** Whether this process knows an entry for the digest; not a use of it. */
  has(digest: string): boolean {
    return this.#entries.has(digest);
  }

  /** The entry for a digest, marked as used now. */
  get(digest: string): CacheEntry | undefined {
    const entry = this.#entries.get(digest);
    if (!entry) return undefined;
    this.#entries.delete(digest);
    entry.lastUsed = this.#now();
    this.#entries.set(digest, entry);
    if (entry.lastUsed - (this.#persisted.get(digest) ?? 0) > TOUCH_PERSIST_MS) {
      this.#persisted.set(digest, entry.lastUsed);
      const t = new Date(entry.lastUsed);
      utimes(this.pathOf(digest), t, t).catch(() => undefined);
    }
    return entry;
  }

  /** Like `get`, but also finds an entry another process sharing the directory wrote. */
  async find(digest: string): Promise<CacheEntry | undefined> {
    const known = this.get(digest);
    if (known) return known;
    const s = await stat(this.pathOf(digest)).catch(() => undefined);
    if (!s?.isFile()) return undefined;
    const entry = { digest, size: s.size, lastUsed: this.#now() };
    this.#add(entry);
    this.#changed();
    return entry;
  }

  /**
   * Moves a verified fill into place. Returns false (and removes the file) when it cannot be kept:
   * larger than the whole cache. Older entries are evicted to make room.
   */
  async admit(tmp: string, digest: string, size: number): Promise<boolean> {
    if (size > this.maxBytes) {
      await unlink(tmp).catch(() => undefined);
      return false;
    }
    await this.#evictFor(size, digest);
    const target = this.pathOf(digest);
    await mkdir(join(target, '..'), { recursive: true });
    await rename(tmp, target);
    const existing = this.#entries.get(digest);
    if (existing) this.#drop(existing);
    this.#add({ digest, size, lastUsed: this.#now() });
    this.#persisted.set(digest, this.#now());
    this.#changed();
    return true;
  }

  /** Drops an entry whose file is gone or wrong (removed beside the proxy, or corrupt). */
  async remove(digest: string): Promise<void> {
    const entry = this.#entries.get(digest);
    if (entry) this.#drop(entry);
    await unlink(this.pathOf(digest)).catch(() => undefined);
    this.#changed();
  }

  list(): CacheEntry[] {
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  stats(): CacheStats {
    return { entries: this.#entries.size, bytes: this.#bytes, maxBytes: this.maxBytes };
  }

  /** Removes the least recently used entries until at most `maxBytes` remain, and entries unused since `before`. */
  async prune(opts: { maxBytes?: number; before?: number }): Promise<CacheEntry[]> {
    const removed: CacheEntry[] = [];
    for (const entry of [...this.#entries.values()]) {
      const tooMany = opts.maxBytes !== undefined && this.#bytes > opts.maxBytes;
      const tooOld = opts.before !== undefined && entry.lastUsed < opts.before;
      if (!tooMany && !tooOld) continue;
      await this.remove(entry.digest);
      removed.push(entry);
    }
    return removed;
  }

  /** Re-hashes every entry and removes those whose content does not match their digest. */
  async verify(progress?: (entry: CacheEntry, ok: boolean) => void): Promise<{ checked: number; removed: string[] }> {
    const removed: string[] = [];
    let checked = 0;
    for (const entry of [...this.#entries.values()]) {
      const ok = await hashesTo(this.pathOf(entry.digest), entry.digest);
      checked++;
      if (!ok) {
        await this.remove(entry.digest);
        removed.push(entry.digest);
      }
      progress?.(entry, ok);
    }
    return { checked, removed };
  }

  async #evictFor(size: number, incoming: string): Promise<void> {
    for (const entry of [...this.#entries.values()]) {
      if (this.#bytes + size <= this.maxBytes) return;
      if (entry.digest === incoming) continue;
      this.#drop(entry);
      await unlink(this.pathOf(entry.digest)).catch(() => undefined);
      this.#events.evicted?.(entry);
    }
  }

  #add(entry: CacheEntry): void {
    this.#entries.set(entry.digest, entry);
    this.#bytes += entry.size;
  }

  #drop(entry: CacheEntry): void {
    if (this.#entries.get(entry.digest) !== entry) return;
    this.#entries.delete(entry.digest);
    this.#persisted.delete(entry.digest);
    this.#bytes -= entry.size;
  }

  #changed(): void {
    this.#events.changed?.(this.stats());
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

async function hashesTo(path: string, digest: string): Promise<boolean> {
  const parsed = parseDigest(digest);
  if (typeof parsed === 'string') return false;
  const hash = createHash(parsed.algorithm);
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  } catch {
    return false;
  }
  return hash.digest('hex') === parsed.hex;
}
