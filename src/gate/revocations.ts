// Revoked digests, held in memory for the hot path and kept current from store events; a periodic
// refresh covers any notification lost while a replica's listener reconnected.
import type { Revocation, Store } from '../store/types.ts';

export class Revocations {
  readonly #store: Store;
  #byDigest = new Map<string, Revocation>();
  #timer: NodeJS.Timeout | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  async start(refreshMs: number): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => {
      this.refresh().catch(() => undefined);
    }, refreshMs);
    this.#timer.unref();
  }

  async refresh(): Promise<void> {
    const all = await this.#store.listRevocations();
    this.#byDigest = new Map(all.map((r) => [r.digest, r]));
  }

  get(digest: string): Revocation | undefined {
    return this.#byDigest.get(digest);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
