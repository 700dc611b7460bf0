// Policy decisions for one digest: rule selection, evidence verification, evaluation, with a verdict
// cache and single flight. Used by the proxy gate and by `pullgate check`.
import type { CacheConfig } from '../config/types.ts';
import { isTransient, RegistryError } from '../oci/errors.ts';
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { CompiledPolicy } from '../policy/load.ts';
import { selectRule, type SelectedRule } from '../policy/match.ts';
import { evaluate } from '../policy/evaluate.ts';
import type { AttestorFacts, ImageRef, Verdict } from '../policy/types.ts';
import type { CompiledAttestor } from '../verify/attestor.ts';
import { DecisionBudget } from '../verify/budget.ts';
import { DEFAULT_DECISION_LIMITS, type DecisionLimits } from './limits.ts';
import { AdmissionQueue } from '../util/admission-queue.ts';
import type { EvidenceSource } from '../verify/source.ts';
import { verifyImage } from '../verify/verify-image.ts';
import { Lru } from '../util/lru.ts';
import { SingleFlight } from '../util/single-flight.ts';

export interface Decision {
  image: ImageRef;
  verdict: Verdict;
  /** Per-attestor facts when evidence was verified now (not from cache). */
  facts?: ReadonlyMap<string, AttestorFacts>;
  cached: boolean;
  ms: number;
  /** Set when evidence could not be fetched or judged: the deny is not a judgement on the image. */
  failure?: 'transient' | 'error';
  /** The version of the policy that made it (sha256 of its text and of the files it loaded). */
  policyVersion: string;
}

export type VerifyFn = (
  source: EvidenceSource,
  image: ImageRef,
  attestors: readonly CompiledAttestor[],
  opts?: { now?: Date; budget?: DecisionBudget },
) => Promise<Map<string, AttestorFacts>>;

/** Seconds a client refused for load is told to wait. */
const BUSY_RETRY_AFTER = '2';

export interface DecideOptions {
  fresh?: boolean;
  /** false: a question (`pullgate check`), not a pull: nothing is cached, logged as a decision or counted. */
  record?: boolean;
}

export interface DeciderDeps {
  policy: () => CompiledPolicy;
  cache: CacheConfig;
  logger: Logger;
  metrics: Metrics;
  now?: () => Date;
  verify?: VerifyFn;
  limits?: DecisionLimits;
}

export function imageName(image: ImageRef): string {
  return `${image.registry}/${image.repository}${image.tag ? `:${image.tag}` : ''}@${image.digest}`;
}

export class Decider {
  readonly #deps: DeciderDeps;
  readonly #cache: Lru<string, Verdict>;
  readonly #flights = new SingleFlight<Decision>();
  readonly #verify: VerifyFn;
  readonly #limits: DecisionLimits;
  readonly #queue: AdmissionQueue;

  constructor(deps: DeciderDeps) {
    this.#deps = deps;
    this.#limits = deps.limits ?? DEFAULT_DECISION_LIMITS;
    this.#queue = new AdmissionQueue(this.#limits.concurrentDecisions, this.#limits.decisionQueue);
    this.#cache = new Lru<string, Verdict>({ max: deps.cache.maxEntries });
    this.#verify = deps.verify ?? verifyImage;
  }

  /** Drops every cached verdict (policy reload, revocation, trust change). */
  invalidate(): void {
    this.#cache.clear();
  }

  /** The rule that governs an image under the current policy. */
  select(image: ImageRef): SelectedRule {
    return selectRule(this.#deps.policy(), image);
  }

  /**
   * `fresh`: verify the evidence again even when a verdict is cached (re-validation); the new verdict is cached.
   * `record: false` (`pullgate check`): a cached verdict is read, but nothing is cached, logged as a decision or
   * counted, so the next pull still makes, records and audits its own decision.
   */
  async decide(image: ImageRef, source: EvidenceSource, opts: DecideOptions = {}): Promise<Decision> {
    const record = opts.record !== false;
    const started = performance.now();
    const policy = this.#deps.policy();
    const selected = selectRule(policy, image);
    // The tag and registry/repository select the rule; the verdict itself depends only on the digest
    // and the rule's content (ruleHash covers the rule, its attestors and their trust roots).
    const key = `${image.registry}/${image.repository}@${image.digest}|${selected.ruleHash}`;
    const hit = opts.fresh ? undefined : this.#cache.get(key);
    if (hit) {
      if (record) this.#deps.metrics.decisions.inc({ verdict: hit.verdict, judgement: hit.judgement, cached: 'true' });
      return { image, verdict: hit, cached: true, ms: performance.now() - started, policyVersion: policy.version };
    }
    // A dry question never joins a pull's run (nor a pull a dry one): each is recorded, or not, by who asked.
    const decision = await this.#flights.run(record ? key : `${key}|dry`, async (): Promise<Decision> => {
      const queued = await this.#queue.run(() => this.#judge(image, source, selected, policy, key, started, record));
      if (queued) return queued.value;
      this.#deps.metrics.events.inc({ event: 'decision-refused-busy' });
      throw new RegistryError(
        'unavailable',
        'TOOMANYREQUESTS',
        `the proxy is busy: ${this.#queue.active} decisions are verifying evidence and ${this.#queue.queued} are waiting (limits.concurrentDecisions ${this.#limits.concurrentDecisions}, limits.decisionQueue ${this.#limits.decisionQueue}); try again in ${BUSY_RETRY_AFTER} s`,
        { retryAfter: BUSY_RETRY_AFTER },
      );
    });
    // Callers that shared the run each asked about their own reference (tag) of the digest.
    return { ...decision, image };
  }

  async #judge(
    image: ImageRef,
    source: EvidenceSource,
    selected: SelectedRule,
    policy: CompiledPolicy,
    key: string,
    started: number,
    record: boolean,
  ): Promise<Decision> {
    const now = this.#deps.now?.() ?? new Date();
    let facts: Map<string, AttestorFacts> = new Map();
    let verdict: Verdict;
    const budget = new DecisionBudget(this.#limits.evidence);
    try {
      const attestors = selected.attestors
        .map((name) => policy.attestors.get(name))
        .filter((a): a is CompiledAttestor => a !== undefined);
      if (attestors.length > 0) facts = await this.#verify(source, image, attestors, { now, budget });
      verdict = evaluate(selected, facts, now);
    } catch (err) {
      // Fail closed: evidence that cannot be fetched or judged is a deny, never cached as a verdict.
      const why = err instanceof RegistryError ? err.message : `verification failed: ${(err as Error).message}`;
      verdict = {
        verdict: 'deny',
        judgement: 'deny',
        enforcementMode: 'enforce',
        rule: selected.name,
        ruleHash: selected.ruleHash,
        tagMode: selected.tagMode,
        reasons: [`evidence could not be checked: ${why}`],
      };
      const decision: Decision = {
        image,
        verdict,
        facts,
        cached: false,
        ms: performance.now() - started,
        failure: isTransient(err) ? 'transient' : 'error',
        policyVersion: policy.version,
      };
      if (record) this.#log(decision, policy);
      return decision;
    }
    // A deny reached with evidence left unexamined for want of time or because the registry
    // failed says nothing about the image: not cached, and transient (stale serving may apply).
    // Denies from count and size budgets are judgements on the evidence as pushed and are cached.
    const incomplete = verdict.judgement === 'deny' && (budget.outage !== undefined || budget.timedOut);
    if (incomplete) {
      verdict = {
        ...verdict,
        reasons: [
          ...verdict.reasons,
          budget.timedOut
            ? `evidence could not be checked in time: ${budget.timeReason()}`
            : `evidence could not be checked: ${budget.outage?.message ?? 'registry failure'}`,
        ],
      };
    }
    const ttl =
      (verdict.judgement === 'allow' ? this.#deps.cache.allowTtlSeconds : this.#deps.cache.denyTtlSeconds) * 1000;
    if (ttl > 0 && !incomplete && record) this.#cache.set(key, verdict, { ttl });
    const decision: Decision = {
      image,
      verdict,
      facts,
      cached: false,
      ms: performance.now() - started,
      policyVersion: policy.version,
      ...(incomplete ? { failure: 'transient' as const } : {}),
    };
    if (record) this.#log(decision, policy);
    return decision;
  }

  #log(d: Decision, policy: CompiledPolicy): void {
    const v = d.verdict;
    this.#deps.metrics.decisions.inc({ verdict: v.verdict, judgement: v.judgement, cached: 'false' });
    const line = {
      image: imageName(d.image),
      digest: d.image.digest,
      rule: v.rule,
      mode: v.enforcementMode,
      verdict: v.verdict,
      judgement: v.judgement,
      reasons: v.reasons,
      ms: Math.round(d.ms * 10) / 10,
      policy: policy.version.slice(0, 12),
      ...(d.failure ? { failure: d.failure } : {}),
    };
    if (v.verdict === 'allow' && v.judgement === 'deny') this.#deps.logger.warn(line, 'decision: dry-run would deny');
    else this.#deps.logger.info(line, 'decision');
  }
}
