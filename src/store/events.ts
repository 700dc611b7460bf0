// How store changes reach subscribers: this process's directly, other replicas' through the database.
import type { Logger } from '../ops/log.ts';
import type { Queryable } from './db.ts';
import type { StoreEvent } from './types.ts';

export interface EventBus {
  /** Queues `e` for the other replicas inside `tx`, so it goes out if and only if the change commits. */
  send(tx: Queryable, e: StoreEvent): Promise<void>;
  /** Hands `e` to this process's subscribers (once the change committed). */
  deliver(e: StoreEvent): void;
  subscribe(listener: (e: StoreEvent) => void): () => void;
  close(): Promise<void>;
}

/** This process's listeners; one that throws is logged and does not keep the event from the others. */
export class Subscribers {
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  readonly #logger: Logger | undefined;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  deliver(e: StoreEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(e);
      } catch (err) {
        this.#logger?.error({ err, event: e }, 'a store event listener failed');
      }
    }
  }

  add(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  clear(): void {
    this.#listeners.clear();
  }
}

/** A single SQLite replica has no one else to tell. */
export function localBus(logger?: Logger): EventBus {
  const subscribers = new Subscribers(logger);
  return {
    async send() {
      /* no other replica */
    },
    deliver: (e) => subscribers.deliver(e),
    subscribe: (listener) => subscribers.add(listener),
    async close() {
      subscribers.clear();
    },
  };
}
