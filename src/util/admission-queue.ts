// At most `running` jobs at once, at most `waiting` more queued behind them; a job that finds the
// queue full is refused at once (the caller answers 503 with Retry-After) instead of piling up
// memory and latency behind work the process cannot do any faster.
export class AdmissionQueue {
  readonly running: number;
  readonly waiting: number;
  #active = 0;
  readonly #queue: (() => void)[] = [];

  constructor(running: number, waiting: number) {
    this.running = running;
    this.waiting = waiting;
  }

  /** Runs `fn` when a slot is free; undefined (fn not run) when the queue is full. */
  async run<T>(fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    const release = await this.acquire();
    if (!release) return undefined;
    try {
      return { value: await fn() };
    } finally {
      release();
    }
  }

  /**
   * A slot held until the returned function is called (once; later calls do nothing): for work
   * that outlives a call, like an upstream response whose body streams on. Undefined when the queue
   * is full. A waiter whose `signal` aborts leaves the queue and rejects with the signal's reason,
   * so that a deadline or a client that left bounds the wait as well as the work.
   */
  async acquire(signal?: AbortSignal): Promise<(() => void) | undefined> {
    if (signal?.aborted) throw signal.reason;
    if (this.#active < this.running) {
      this.#active++;
      return this.#releaser();
    }
    if (this.#queue.length >= this.waiting) return undefined;
    await waitInQueue(this.#queue, signal);
    // The slot was handed over by the job that released it (#active unchanged).
    return this.#releaser();
  }

  #releaser(): () => void {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      // The slot passes straight to the next waiter, so a newcomer cannot overtake the queue.
      const next = this.#queue.shift();
      if (next) next();
      else this.#active--;
    };
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }
}

/**
 * Waits in `queue` until its entry is called (a slot handed over); a `signal` that aborts first
 * takes the entry out and rejects with the signal's reason. Shared by the queues of this module
 * and util/shared-admission-queue.ts.
 */
export function waitInQueue(queue: (() => void)[], signal?: AbortSignal, queued?: () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const wake = (): void => {
      signal?.removeEventListener('abort', abort);
      resolve();
    };
    const abort = (): void => {
      const at = queue.indexOf(wake);
      if (at >= 0) queue.splice(at, 1);
      reject(signal?.reason);
    };
    queue.push(wake);
    signal?.addEventListener('abort', abort, { once: true });
    queued?.();
  });
}
