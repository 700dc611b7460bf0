// Continuous re-validation: on a schedule, every digest served recently is judged again against
// the current policy with evidence fetched now (keys rotated, a scan past its maxAge, a signature
// removed). What would now be denied is reported (metric, log line, audit record, the report the
// admin API and `pullgate revalidate report` show) and, with `enforce`, withdrawn the way a
// revocation withdraws it: revoked by the actor `revalidation`, so an admin unrevokes it after
// remediation.
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { Store } from '../store/types.ts';
import type { Admission } from './admission.ts';
import type { Repo } from './types.ts';

export interface RevalidateConfig {
  /** 0 turns re-validation off. */
  intervalSeconds: number;
  /** Digests admitted (served) within this many seconds are judged again. */
  servedWithinSeconds: number;
  /** The most digests one run judges; the most recently served first. */
  maxPerRun: number;
  /** Withdraw what would now be denied, instead of only reporting it. */
  enforce: boolean;
}

export interface Finding {
  image: string;
  digest: string;
  upstream: string;
  repository: string;
  tag?: string;
  rule: string;
  reasons: string[];
  /** Whether it was withdrawn (enforce). */
  withdrawn: boolean;
}

export interface RevalidationReport {
  startedAt: string;
  finishedAt: string;
  /** Digests judged again. */
  judged: number;
  /** Digests whose evidence could not be fetched: neither kept nor withdrawn on this run's word. */
  unchecked: number;
  denied: Finding[];
  enforce: boolean;
}

export interface RevalidateDeps {
  store: Store;
  logger: Logger;
  metrics: Metrics;
  revalidate(repo: Repo, digest: string, tag: string | undefined): Promise<Admission | undefined>;
}

/** Digests judged at once: re-validation is background work and must not crowd out pulls. */
const CONCURRENCY = 2;

export class Revalidator {
  readonly #config: RevalidateConfig;
  readonly #deps: RevalidateDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<RevalidationReport> | undefined;
  #last: RevalidationReport | undefined;

  constructor(config: RevalidateConfig, deps: RevalidateDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  start(): void {
    if (this.#config.intervalSeconds <= 0 || this.#timer) return;
    this.#timer = setInterval(() => {
      this.run().catch((err: unknown) =>
        this.#deps.logger.error({ error: (err as Error).message }, 'revalidation failed'),
      );
    }, this.#config.intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get last(): RevalidationReport | undefined {
    return this.#last;
  }

  /** One run now (or the one already running). */
  run(): Promise<RevalidationReport> {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(): Promise<RevalidationReport> {
    const { store, logger, metrics } = this.#deps;
    const startedAt = new Date();
    const since = new Date(startedAt.getTime() - this.#config.servedWithinSeconds * 1000);
    const recent = await store.recentAdmissions(since, this.#config.maxPerRun);
    const denied: Finding[] = [];
    let judged = 0;
    let unchecked = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < recent.length) {
        const a = recent[next++]!;
        const repo = { upstream: a.upstream, repository: a.repository };
        let admission: Admission | undefined;
        try {
          admission = await this.#deps.revalidate(repo, a.digest, a.tag);
        } catch (err) {
          unchecked++;
          logger.warn({ digest: a.digest, error: (err as Error).message }, 'revalidation could not judge a digest');
          continue;
        }
        if (!admission) continue;
        judged++;
        if (admission.admit) continue;
        if (admission.why !== 'policy') continue;
        if (admission.decision.failure === 'transient') {
          unchecked++;
          continue;
        }
        const image = `${a.upstream}/${a.repository}${a.tag ? `:${a.tag}` : ''}@${a.digest}`;
        const v = admission.decision.verdict;
        const finding: Finding = {
          image,
          digest: a.digest,
          upstream: a.upstream,
          repository: a.repository,
          ...(a.tag ? { tag: a.tag } : {}),
          rule: v.rule,
          reasons: v.reasons,
          withdrawn: false,
        };
        const entry = {
          kind: 'revalidate-deny' as const,
          actor: 'revalidation',
          upstream: a.upstream,
          repository: a.repository,
          digest: a.digest,
          ...(a.tag ? { tag: a.tag } : {}),
          rule: v.rule,
          reasons: v.reasons,
          detail: { policy: admission.decision.policyVersion, enforce: this.#config.enforce },
        };
        if (this.#config.enforce) {
          // Revocations are per digest (docs/decisions.md): the reason names the repository and rule
          // the finding is about, since the withdrawal reaches every repository serving the digest.
          const reason = `re-validation of ${a.upstream}/${a.repository} (rule ${v.rule}): ${v.reasons.join('; ')}`;
          await store.revoke(a.digest, reason.slice(0, 2000), 'revalidation', entry);
          finding.withdrawn = true;
        } else {
          await store.appendAudit(entry);
        }
        denied.push(finding);
        logger.warn(
          { image, rule: v.rule, reasons: v.reasons, withdrawn: finding.withdrawn },
          'revalidation: a digest served recently would now be denied',
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, recent.length) }, worker));
    const report: RevalidationReport = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      judged,
      unchecked,
      denied,
      enforce: this.#config.enforce,
    };
    metrics.revalidationDenied.set(denied.length);
    metrics.revalidationRuns.inc();
    logger.info({ judged, unchecked, denied: denied.length, enforce: this.#config.enforce }, 'revalidation run');
    this.#last = report;
    return report;
  }
}
