// An AdmissionQueue whose running count is shared by every thread that holds its buffer: the main
// thread and the fill thread each queue their own waiters, but together never run more than
// `running` jobs. A release moves a generation counter and notifies it; each thread with waiters
// waits on that counter (Atomics.waitAsync, so no thread blocks) and tries again.

import { waitInQueue } from './admission-queue.ts';

const ACTIVE = 0;
const GENERATION = 1;
/** From here, the slots each holder (thread) has: what a thread that died held can be given back. */
const HELD = 2;
/** A waiter re-checks at least this often, so even a missed notification only delays it. */
const RECHECK_MS = 50;

/** A shared queue's memory, and which of its holders this thread is. */
export interface SharedSlots {
  buffer: SharedArrayBuffer;
  /** 0 for the main thread; each other thread has its own index. */
  holder: number;
}

/** The memory a shared queue keeps its count in, for `holders` threads: made once, handed to every thread. */
export function sharedSlots(holders = 2): SharedArrayBuffer {
  return new SharedArrayBuffer((HELD + holders) * Int32Array.BYTES_PER_ELEMENT);
}

/**
 * Gives back every slot `holder` held: its thread ended (it died, or was stopped) without its
 * releases. A thread cut off between its two counts of one take leaves that one slot miscounted.
 */
export function reclaimSlots(buffer: SharedArrayBuffer, holder: number): number {
  const counts = new Int32Array(buffer);
  const n = Atomics.exchange(counts, HELD + holder, 0);
  if (n > 0) {
    Atomics.sub(counts, ACTIVE, n);
    Atomics.add(counts, GENERATION, 1);
    Atomics.notify(counts, GENERATION);
  }
  return n;
}

export class SharedAdmissionQueue {
  readonly running: number;
  readonly waiting: number;
  readonly #counts: Int32Array;
  readonly #held: number;
  readonly #queue: (() => void)[] = [];
  #watching = false;

  /** `holder`: this thread's index among the buffer's holders (0 the main thread, 1 the fill thread). */
  constructor(buffer: SharedArrayBuffer, running: number, waiting: number, holder = 0) {
    this.#counts = new Int32Array(buffer);
    this.#held = HELD + holder;
    if (this.#held >= this.#counts.length) throw new Error(`internal: holder ${holder} has no count in the buffer`);
    this.running = running;
    this.waiting = waiting;
  }

  /** As AdmissionQueue.acquire: a slot held until the returned function is called; undefined when the queue is full. */
  async acquire(signal?: AbortSignal): Promise<(() => void) | undefined> {
    if (signal?.aborted) throw signal.reason;
    // Waiters of this thread go first: a newcomer does not overtake them.
    if (this.#queue.length === 0 && this.#take()) return this.#releaser();
    if (this.#queue.length >= this.waiting) return undefined;
    await waitInQueue(this.#queue, signal, () => void this.#watch());
    // The watcher took the slot for this waiter.
    return this.#releaser();
  }

  /** Jobs running now, in every thread. */
  get active(): number {
    return Atomics.load(this.#counts, ACTIVE);
  }

  /** Waiters of this thread. */
  get queued(): number {
    return this.#queue.length;
  }

  #take(): boolean {
    for (;;) {
      const n = Atomics.load(this.#counts, ACTIVE);
      if (n >= this.running) return false;
      if (Atomics.compareExchange(this.#counts, ACTIVE, n, n + 1) === n) {
        Atomics.add(this.#counts, this.#held, 1);
        return true;
      }
    }
  }

  /** Hands freed slots to this thread's waiters, in order, until none waits. */
  async #watch(): Promise<void> {
    if (this.#watching) return;
    this.#watching = true;
    try {
      while (this.#queue.length > 0) {
        const generation = Atomics.load(this.#counts, GENERATION);
        if (this.#take()) {
          const next = this.#queue.shift();
          if (next) next();
          else this.#give();
          continue;
        }
        const wait = Atomics.waitAsync(this.#counts, GENERATION, generation, RECHECK_MS);
        if (wait.async) await wait.value;
      }
    } finally {
      this.#watching = false;
    }
  }

  #give(): void {
    Atomics.sub(this.#counts, this.#held, 1);
    Atomics.sub(this.#counts, ACTIVE, 1);
    Atomics.add(this.#counts, GENERATION, 1);
    Atomics.notify(this.#counts, GENERATION);
  }

  #releaser(): () => void {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#give();
    };
  }
}
