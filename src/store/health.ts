// Whether the store can serve requests now: fed by the failures of real queries and by a probe on an
// interval. /readyz answers 503 while it is down, so a load balancer sends pulls to replicas whose
// store works (or to none: a pull that reaches a replica without a store fails closed anyway).
import type { Logger } from '../ops/log.ts';
import { StoreError, UNUSABLE, type FaultKind } from './faults.ts';

/** How often the store is probed while up; while down it is retried every second. */
export const STORE_PROBE_INTERVAL_MS = 5_000;

export interface StoreHealth {
  readonly up: boolean;
  /** Why it is down (the operator's words), undefined while up. */
  readonly cause: string | undefined;
  /** Called with the new state on every change. */
  onChange(listener: (up: boolean) => void): () => void;
  /** Called for every failed store operation, with its kind. */
  onFault(listener: (kind: FaultKind) => void): () => void;
}

export interface HealthState {
  up: boolean;
  /** When it went down (epoch ms), while down. */
  downSince?: number;
  /** The latest fault that makes the store unusable (epoch ms). */
  lastFaultAt?: number;
  cause?: string;
}

export type HealthEvent =
  | { type: 'fault'; kind: FaultKind; cause: string; at: number }
  | { type: 'probe-failed'; cause: string; at: number }
  | { type: 'probe-ok'; at: number };

/**
 * The next state. A fault of an unusable kind, or a failed probe, takes the store down at once; it
 * comes back up on a successful probe only once `holdMs` passed without another such fault, so that
 * real queries still failing (a table lock the probe does not touch, a full disk it does not write
 * to) keep it down. A fault of kind `error` (one bad statement) says nothing about the store.
 */
export function nextHealth(state: HealthState, event: HealthEvent, holdMs: number): HealthState {
  switch (event.type) {
    case 'fault':
      if (!UNUSABLE.has(event.kind)) return state;
      return down(state, event.cause, event.at);
    case 'probe-failed':
      return down(state, event.cause, event.at);
    case 'probe-ok':
      if (state.up || (state.lastFaultAt !== undefined && event.at - state.lastFaultAt < holdMs)) return state;
      return { up: true };
  }
}

function down(state: HealthState, cause: string, at: number): HealthState {
  return { up: false, downSince: state.up ? at : (state.downSince ?? at), lastFaultAt: at, cause };
}

export interface HealthOptions {
  /** "PostgreSQL" or "SQLite", for logs. */
  store: string;
  /** Probe interval while up. */
  intervalMs: number;
  logger?: Logger | undefined;
  now?: () => number;
}

/** Faults of one kind and cause are logged once, then at most this often while they go on. */
const REPEAT_LOG_MS = 10_000;

export class HealthMonitor implements StoreHealth {
  readonly #opts: HealthOptions;
  /** Probe interval while down, and how long no fault must come before it counts as up again. */
  readonly #retryMs: number;
  #state: HealthState = { up: true };
  #probe: (() => Promise<void>) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #probing = false;
  #stopped = false;
  readonly #changeListeners = new Set<(up: boolean) => void>();
  readonly #faultListeners = new Set<(kind: FaultKind) => void>();
  #lastLogged: { key: string; at: number; suppressed: number } | undefined;

  constructor(opts: HealthOptions) {
    this.#opts = opts;
    this.#retryMs = Math.min(1_000, opts.intervalMs);
  }

  get up(): boolean {
    return this.#state.up;
  }

  get cause(): string | undefined {
    return this.#state.cause;
  }

  onChange(listener: (up: boolean) => void): () => void {
    this.#changeListeners.add(listener);
    return () => void this.#changeListeners.delete(listener);
  }

  onFault(listener: (kind: FaultKind) => void): () => void {
    this.#faultListeners.add(listener);
    return () => void this.#faultListeners.delete(listener);
  }

  /** A real operation failed. */
  fault(err: StoreError): void {
    for (const listener of this.#faultListeners) listener(err.kind);
    this.#logFault(err);
    this.#apply({ type: 'fault', kind: err.kind, cause: err.operator, at: this.#now() });
  }

  /** Starts probing with `probe`, which rejects when the store is unusable. */
  start(probe: () => Promise<void>): void {
    this.#probe = probe;
    this.#schedule(this.#opts.intervalMs);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  #apply(event: HealthEvent): void {
    const before = this.#state;
    this.#state = nextHealth(before, event, this.#retryMs);
    if (before.up === this.#state.up) return;
    const { logger, store } = this.#opts;
    if (this.#state.up) {
      logger?.info(
        { store, downMs: before.downSince === undefined ? undefined : event.at - before.downSince },
        'store usable again: ready',
      );
    } else {
      logger?.error({ store, cause: this.#state.cause }, 'store unusable: not ready, requests fail closed');
      this.#schedule(this.#retryMs);
    }
    for (const listener of this.#changeListeners) listener(this.#state.up);
  }

  #logFault(err: StoreError): void {
    const key = `${err.kind} ${err.operator}`;
    const at = this.#now();
    const last = this.#lastLogged;
    if (last && last.key === key && at - last.at < REPEAT_LOG_MS) {
      last.suppressed++;
      return;
    }
    this.#opts.logger?.warn(
      {
        store: this.#opts.store,
        kind: err.kind,
        cause: err.operator,
        ...(last?.key === key ? { repeatedSinceLastLine: last.suppressed } : {}),
      },
      'store operation failed',
    );
    this.#lastLogged = { key, at, suppressed: 0 };
  }

  #schedule(ms: number): void {
    if (this.#stopped || !this.#probe) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#runProbe(), ms);
    this.#timer.unref();
  }

  async #runProbe(): Promise<void> {
    const probe = this.#probe;
    if (this.#probing || this.#stopped || !probe) return;
    this.#probing = true;
    // The probe has its own bound, whatever the driver does: a probe that never answers is a failure.
    const bound = Math.max(this.#opts.intervalMs, 2_000);
    let guard: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        probe(),
        new Promise<never>((_, reject) => {
          guard = setTimeout(() => reject(new Error(`the health probe did not answer within ${bound} ms`)), bound);
        }),
      ]);
      this.#apply({ type: 'probe-ok', at: this.#now() });
    } catch (err) {
      const cause = err instanceof StoreError ? err.operator : (err as Error).message;
      this.#apply({ type: 'probe-failed', cause, at: this.#now() });
    } finally {
      clearTimeout(guard);
      this.#probing = false;
      this.#schedule(this.#state.up ? this.#opts.intervalMs : this.#retryMs);
    }
  }
}
