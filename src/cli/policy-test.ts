// `pullgate policy test CANDIDATE --replay 7d`: judges a candidate policy against the images the
// proxy actually served or refused in that window (its audit trail and recent admissions, from the
// store the configuration names), with evidence fetched again, beside the policy in force, and
// prints what would change: newly denied and newly allowed, with the candidate's reasons. Runs
// beside a live proxy: the store is only read. Exit 0 when nothing would be newly denied, 1 when
// something would, 2 on errors.
import { loadConfig } from '../config/load.ts';
import { Decider, type Decision } from '../gate/decider.ts';
import { registryEvidenceSource } from '../gate/evidence-source.ts';
import { Upstreams } from '../oci/upstreams.ts';
import { createLogger } from '../ops/log.ts';
import { Metrics } from '../ops/metrics.ts';
import { parseDuration } from '../policy/duration.ts';
import { EMBEDDED_POLICY, loadPolicyFile, parsePolicy, type CompiledPolicy } from '../policy/load.ts';
import type { ImageRef } from '../policy/types.ts';
import { openStore } from '../store/open.ts';
import type { Store } from '../store/types.ts';
import { UsageError, type Values } from './args.ts';
import type { Command } from './command.ts';
import type { Output } from './output.ts';

const DECISION_KINDS = ['allow', 'deny', 'dryrun-deny', 'grant-use', 'stale-serve'] as const;
const CONCURRENCY = 2;

export interface Change {
  image: string;
  before: 'allow' | 'deny';
  after: 'allow' | 'deny';
  rule: string;
  reasons: string[];
}

export const policyTest: Command = {
  spec: {
    name: 'policy test',
    args: ['CANDIDATE'],
    summary: 'what a candidate policy would change for the images pulled lately; exit 1 if any would be newly denied',
    options: {
      replay: { type: 'string', value: 'DURATION', help: 'the window of pulls to replay (7d, 12h)', required: true },
      limit: { type: 'string', value: 'N', help: 'the most images judged (default 500)' },
      config: {
        type: 'string',
        short: 'c',
        value: 'FILE',
        help: 'the configuration (store, upstreams, the policy in force)',
      },
      json: { type: 'boolean', help: 'print JSON' },
    },
    notes: ['the store is only read; evidence is fetched again from the allowlisted upstreams.'],
  },
  run: (values, [candidate], out) => replay(values, candidate ?? '', out),
};

async function replay(values: Values, candidateFile: string, out: Output): Promise<number> {
  const window = parseDuration(String(values.replay));
  if (window === undefined) throw new UsageError(`--replay ${String(values.replay)} is not a duration like 7d or 12h`);
  const limit = values.limit === undefined ? 500 : Number(values.limit);
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new UsageError(`--limit must be a positive whole number, got ${String(values.limit)}`);
  const config = loadConfig(values.config as string | undefined);
  const current = config.policyFile
    ? loadPolicyFile(config.policyFile)
    : parsePolicy(EMBEDDED_POLICY, { file: '<embedded policy>', baseDir: process.cwd() });
  const candidate = loadPolicyFile(candidateFile);
  const store = await openStore(config.store);
  const upstreams = new Upstreams(config);
  try {
    const images = await pulledSince(store, new Date(Date.now() - window), limit);
    out.err(
      `replaying ${images.length} images pulled in the last ${String(values.replay)} against ${candidateFile}…\n`,
    );
    const judge = (policy: CompiledPolicy) =>
      new Decider({
        policy: () => policy,
        cache: { ...config.cache, allowTtlSeconds: 0, denyTtlSeconds: 0 },
        logger: createLogger('silent'),
        metrics: new Metrics(),
      });
    const before = judge(current);
    const after = judge(candidate);
    const changes: Change[] = [];
    let unchecked = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < images.length) {
        const image = images[next++]!;
        if (!upstreams.canonical(image.registry)) continue;
        const source = registryEvidenceSource(upstreams, image.registry, config.manifestMaxBytes);
        const [b, a] = [await before.decide(image, source), await after.decide(image, source)];
        if (b.failure || a.failure) {
          unchecked++;
          continue;
        }
        const change = compare(image, b, a);
        if (change) changes.push(change);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    changes.sort((x, y) => x.image.localeCompare(y.image));
    const denied = changes.filter((c) => c.after === 'deny');
    const allowed = changes.filter((c) => c.after === 'allow');
    out.result(values.json, { replayed: images.length, unchecked, newlyDenied: denied, newlyAllowed: allowed }, () =>
      [
        `${images.length} images replayed, ${unchecked} could not be checked (evidence unreachable)`,
        `newly denied: ${denied.length}`,
        ...denied.map((c) => `  ${c.image} (${c.rule}): ${c.reasons.join('; ')}`),
        `newly allowed: ${allowed.length}`,
        ...allowed.map((c) => `  ${c.image} (${c.rule}): ${c.reasons.join('; ')}`),
        '',
      ].join('\n'),
    );
    return denied.length > 0 ? 1 : 0;
  } finally {
    await upstreams.close();
    await store.close();
  }
}

/** What the proxy serves, before and after: a dry run that would deny is still served. */
export function compare(image: ImageRef, before: Decision, after: Decision): Change | undefined {
  const b = before.verdict.verdict;
  const a = after.verdict.verdict;
  if (a === b) return undefined;
  const name = `${image.registry}/${image.repository}${image.tag ? `:${image.tag}` : ''}@${image.digest}`;
  return { image: name, before: b, after: a, rule: after.verdict.rule, reasons: after.verdict.reasons };
}

/** The distinct images decided or served since `since`: the audit trail's decisions and the admissions. */
async function pulledSince(store: Store, since: Date, limit: number): Promise<ImageRef[]> {
  const seen = new Map<string, ImageRef>();
  const add = (registry: string, repository: string, digest: string, tag: string | undefined): void => {
    const key = `${registry}/${repository}:${tag ?? ''}@${digest}`;
    if (seen.size < limit && !seen.has(key)) seen.set(key, { registry, repository, digest, ...(tag ? { tag } : {}) });
  };
  for (const kind of DECISION_KINDS) {
    for (const r of await store.queryAudit({ kind, since, limit: 10_000 })) {
      if (r.upstream && r.repository && r.digest) add(r.upstream, r.repository, r.digest, r.tag);
    }
  }
  for (const a of await store.recentAdmissions(since, limit)) add(a.upstream, a.repository, a.digest, a.tag);
  return [...seen.values()];
}
