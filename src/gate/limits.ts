// The budgets of the gate and the decider with their safe defaults, in a module of their own so
// that the config loader can name them without loading the verifiers.
import { DEFAULT_EVIDENCE_LIMITS, type EvidenceLimits } from '../verify/budget.ts';

/** The widest image manifest accepted (`limits.manifestMaxLayers`): real images have tens of layers, overlayfs stops at 128. */
export const DEFAULT_MANIFEST_MAX_LAYERS = 1000;
/** The widest index accepted (`limits.indexMaxManifests`): platforms and their attestation manifests. */
export const DEFAULT_INDEX_MAX_MANIFESTS = 1000;

/**
 * Valid tags read from one upstream tag list (`limits.tagListMaxTags`): each kept tag is a string in
 * memory and the whole list is sorted to page it, so the count, not only the bytes, is bounded.
 */
export const DEFAULT_TAG_LIST_MAX_TAGS = 100_000;

export interface WidthLimits {
  manifestMaxLayers: number;
  indexMaxManifests: number;
}

export const DEFAULT_WIDTH_LIMITS: WidthLimits = {
  manifestMaxLayers: DEFAULT_MANIFEST_MAX_LAYERS,
  indexMaxManifests: DEFAULT_INDEX_MAX_MANIFESTS,
};

/** What decisions may spend: evidence per decision, and how many run (and wait) at once. */
export interface DecisionLimits {
  evidence: EvidenceLimits;
  /** Decisions that verify evidence (not served from the verdict cache) at once. */
  concurrentDecisions: number;
  /** Decisions waiting for a slot; one more is refused with 503 and Retry-After. */
  decisionQueue: number;
}

export const DEFAULT_DECISION_LIMITS: DecisionLimits = {
  evidence: DEFAULT_EVIDENCE_LIMITS,
  concurrentDecisions: 4,
  decisionQueue: 64,
};
