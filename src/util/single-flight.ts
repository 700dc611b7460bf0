// Concurrent calls for the same key share one run: the first caller starts it, the others wait on
// its promise, and the key is free again once the run settles (success or failure alike).
export class SingleFlight<V> {
  readonly #running = new Map<string, Promise<V>>();

  run(key: string, fn: () => Promise<V>): Promise<V> {
    const running = this.#running.get(key);
    if (running) return running;
    const p = fn().finally(() => {
      if (this.#running.get(key) === p) this.#running.delete(key);
    });
    this.#running.set(key, p);
    return p;
  }

  get size(): number {
    return this.#running.size;
  }
}
