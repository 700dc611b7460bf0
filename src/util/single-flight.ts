// Concurrent calls for the same key share one run: the first caller starts it, the others wait on
// its promise, and the key is free again once the run settles (success or failure alike).
//
// A caller may pass the signal of the client it works for: when it aborts, that caller stops
// waiting (rejected with the signal's reason). The run itself is told to stop (its own signal
// aborts) only once every caller has left; a caller without a signal never leaves, so work that
// something inside the proxy waits for always completes.

interface Flight<V> {
  promise: Promise<V>;
  controller: AbortController;
  /** Callers still waiting that may leave; callers without a signal pin the run instead. */
  waiting: number;
  pinned: boolean;
}

export class SingleFlight<V> {
  readonly #running = new Map<string, Flight<V>>();

  run(key: string, fn: (signal: AbortSignal) => Promise<V>, signal?: AbortSignal): Promise<V> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    let flight = this.#running.get(key);
    if (!flight) {
      const controller = new AbortController();
      const created: Flight<V> = {
        controller,
        waiting: 0,
        pinned: false,
        promise: fn(controller.signal),
      };
      created.promise = created.promise.finally(() => {
        if (this.#running.get(key) === created) this.#running.delete(key);
      });
      // A run every caller left may still fail: nobody is there to be told.
      created.promise.catch(() => undefined);
      this.#running.set(key, created);
      flight = created;
    }
    if (!signal) {
      flight.pinned = true;
      return flight.promise;
    }
    const joined = flight;
    joined.waiting++;
    return new Promise<V>((resolve, reject) => {
      const leave = () => {
        joined.waiting--;
        reject(signal.reason as Error);
        if (joined.waiting === 0 && !joined.pinned) {
          // Nobody is left: a later caller starts afresh rather than joining a run being stopped.
          if (this.#running.get(key) === joined) this.#running.delete(key);
          joined.controller.abort(signal.reason);
        }
      };
      signal.addEventListener('abort', leave, { once: true });
      joined.promise.then(
        (v) => {
          signal.removeEventListener('abort', leave);
          resolve(v);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', leave);
          reject(err as Error);
        },
      );
    });
  }

  get size(): number {
    return this.#running.size;
  }
}
