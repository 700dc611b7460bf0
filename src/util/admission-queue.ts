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
    if (this.#active >= this.running) {
      if (this.#queue.length >= this.waiting) return undefined;
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    } else {
      this.#active++;
    }
    try {
      return { value: await fn() };
    } finally {
      // The slot passes straight to the next waiter, so a newcomer cannot overtake the queue.
      const next = this.#queue.shift();
      if (next) next();
      else this.#active--;
    }
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }
}
