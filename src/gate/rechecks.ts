// When a pinned tag is next asked of its upstream, and what the upstream said last time. A tag is
// re-checked at most once per interval: a pinned tag is served from the store in between, and a
// moved tag is noticed within one interval of moving.
import { Lru } from '../util/lru.ts';

export interface Observation {
  /** What the upstream tag pointed at when last asked; undefined until an answer came. */
  digest: string | undefined;
  /** When it was last asked (or claimed for asking). */
  at: number;
  /** The digest was judged for following and refused: keep serving the pin until the next check. */
  refused?: boolean;
}

export class TagRechecks {
  readonly #intervalMs: number;
  readonly #seen: Lru<string, Observation>;

  constructor(intervalMs: number, maxTags: number) {
    this.#intervalMs = intervalMs;
    this.#seen = new Lru({ max: maxTags });
  }

  last(key: string): Observation | undefined {
    return this.#seen.get(key);
  }

  /** True when the tag is due to be asked again; the caller then asks, and nobody else does until the next interval. */
  claim(key: string, now: number): boolean {
    const seen = this.#seen.get(key);
    if (seen && now - seen.at < this.#intervalMs) return false;
    this.#seen.set(key, { digest: seen?.digest, at: now });
    return true;
  }

  observe(key: string, digest: string, now: number): void {
    const seen = this.#seen.get(key);
    this.#seen.set(key, {
      digest,
      at: seen?.at ?? now,
      ...(seen?.digest === digest && seen.refused ? { refused: true } : {}),
    });
  }

  refuse(key: string, digest: string): void {
    const seen = this.#seen.get(key);
    if (seen?.digest === digest) seen.refused = true;
  }

  forget(): void {
    this.#seen.clear();
  }
}
