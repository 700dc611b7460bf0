// What one decision may spend on evidence: how many manifests, layers, signatures and bytes it
// examines, and for how long. Anyone may push evidence next to an image on a public registry, so
// every count an attacker controls has a limit; what is over a limit is rejected with a reason
// naming the budget, its number and the config key, and the other evidence is still judged.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { EVIDENCE_BLOB_MAX_BYTES } from '../oci/evidence.ts';
import type { RegistryError } from '../oci/errors.ts';

export interface EvidenceLimits {
  /** Evidence manifests opened (`.sig`, `.att` and referrers together). */
  manifests: number;
  /** Evidence layers fetched in total. */
  layers: number;
  /** Largest signature payload, envelope or bundle fetched. */
  blobBytes: number;
  /** Entries of one referrers index read (the rest are not looked at). */
  referrers: number;
  /** Signatures in one DSSE envelope: an envelope with more is rejected whole, unverified. */
  signaturesPerEnvelope: number;
  /** Evidence bytes fetched for one decision, all layers together. */
  bytes: number;
  /** Wall-clock time one decision may spend on evidence; what is not examined by then is not. */
  verifyMs: number;
  /** Referrer manifests or evidence blobs fetched at once. */
  concurrency: number;
}

export const DEFAULT_EVIDENCE_LIMITS: EvidenceLimits = {
  manifests: 64,
  layers: 128,
  blobBytes: EVIDENCE_BLOB_MAX_BYTES,
  referrers: 1024,
  signaturesPerEnvelope: 16,
  bytes: 8 * 1024 * 1024,
  verifyMs: 10_000,
  concurrency: 8,
};

/** The config key of each limit, for reasons that tell the admin what to raise. */
export function limitKey(limit: keyof EvidenceLimits): string {
  return `limits.evidence.${limit}`;
}

/** `evidence budget: <what>, limit <n> (<key>)`: the one shape of every budget reason. */
export function overBudget(what: string, limit: keyof EvidenceLimits, value: number): string {
  return `evidence budget: ${what}, limit ${value} (${limitKey(limit)})`;
}

/** Synchronous work between two yields to the event loop: other requests wait at most about this long (docs/decisions.md). */
const SLICE_MS = 4;

/**
 * One decision's running account: the deadline, the bytes fetched, and why the evidence seen may
 * be incomplete for reasons that say nothing about the image (an outage, the deadline under load).
 */
export class DecisionBudget {
  readonly limits: EvidenceLimits;
  readonly #deadline: number;
  #sliceStart: number;
  #bytes = 0;
  /** The first outage (timeout, 5xx) that left a piece of evidence unexamined. */
  outage: RegistryError | undefined;
  /** Set once the deadline passed: what was not examined by then is not. */
  timedOut = false;

  constructor(limits: EvidenceLimits = DEFAULT_EVIDENCE_LIMITS) {
    this.limits = limits;
    this.#sliceStart = performance.now();
    this.#deadline = this.#sliceStart + limits.verifyMs;
  }

  /** Reserves `size` bytes of the decision's evidence bytes; false when they do not fit. */
  reserveBytes(size: number): boolean {
    if (this.#bytes + size > this.limits.bytes) return false;
    this.#bytes += size;
    return true;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the deadline has passed (and records it). */
  expired(): boolean {
    if (!this.timedOut && performance.now() > this.#deadline) this.timedOut = true;
    return this.timedOut;
  }

  /** The reason given for evidence left unexamined at the deadline. */
  timeReason(): string {
    return overBudget(`verification took longer than ${this.limits.verifyMs} ms`, 'verifyMs', this.limits.verifyMs);
  }

  /**
   * Called between units of synchronous work (a signature check, an envelope parse): yields to the
   * event loop once a slice is used up, so a decision with much evidence never stalls other requests.
   */
  async pace(): Promise<void> {
    if (performance.now() - this.#sliceStart < SLICE_MS) return;
    await yieldToLoop();
    this.#sliceStart = performance.now();
  }

  noteOutage(err: RegistryError): void {
    this.outage ??= err;
  }
}
