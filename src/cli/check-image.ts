// `pullgate check IMAGE`, the work: resolve through the configured upstreams, evaluate the policy, print the
// verdict with every attestor's result. Exit 0 when the policy lets the proxy serve the image (a dry-run
// rule's would-be deny included, as the proxy serves it), 1 when it does not.
import { loadConfig } from '../config/load.ts';
import { Decider } from '../gate/decider.ts';
import { registryEvidenceSource } from '../gate/evidence-source.ts';
import { isDigest } from '../oci/reference.ts';
import { createLogger } from '../ops/log.ts';
import { Metrics } from '../ops/metrics.ts';
import { loadPolicyFile, parsePolicy, EMBEDDED_POLICY } from '../policy/load.ts';
import { routeRequest } from '../proxy/route.ts';
import { Upstreams } from '../oci/upstreams.ts';
import { UsageError, type Values } from './args.ts';
import { resolveImage } from '../oci/image-name.ts';
import type { Output } from './output.ts';
import type { Verdict } from '../policy/types.ts';

function headline(v: Verdict): string {
  if (v.verdict === 'allow' && v.judgement === 'deny') return 'SERVED (dry run would deny)';
  return v.judgement === 'allow' ? 'ALLOW' : 'DENY';
}

export async function checkImage(values: Values, imageText: string, out: Output): Promise<number> {
  const config = loadConfig(values.config as string | undefined);
  const policyFile = (values.policy as string | undefined) ?? config.policyFile;
  const policy = policyFile
    ? loadPolicyFile(policyFile)
    : parsePolicy(EMBEDDED_POLICY, { file: '<embedded policy>', baseDir: process.cwd() });
  const upstreams = new Upstreams(config);
  try {
    // The same routing as a pull through the proxy: only allowlisted registries, validated names.
    const resolved = resolveImage(imageText, upstreams);
    if (typeof resolved === 'string') throw new UsageError(resolved);
    const reference = resolved.digest ?? resolved.tag ?? 'latest';
    const target = routeRequest(
      `/v2/${resolved.upstream}/${resolved.repository}/manifests/${reference}`,
      undefined,
      upstreams,
    );
    const client = upstreams.client(target.upstream);
    out.err(`resolving ${target.upstream}/${target.repository}:${reference}…\n`);
    const manifest = await client.manifest(target.repository, reference, undefined, config.manifestMaxBytes);
    const image = {
      registry: target.upstream,
      repository: target.repository,
      digest: manifest.digest,
      ...(isDigest(reference) ? {} : { tag: reference }),
    };
    const decider = new Decider({
      policy: () => policy,
      cache: { ...config.cache, allowTtlSeconds: 0, denyTtlSeconds: 0 },
      logger: createLogger('silent'),
      metrics: new Metrics(),
    });
    const selected = decider.select(image);
    out.err(`${manifest.digest}: rule ${selected.name}, verifying ${selected.attestors.length} attestor(s)…\n`);
    const decision = await decider.decide(
      image,
      registryEvidenceSource(upstreams, target.upstream, config.manifestMaxBytes),
    );
    const attestors = [...(decision.facts?.values() ?? [])];
    const v = decision.verdict;
    out.result(
      values.json,
      { image, verdict: v, attestors, ...(decision.failure ? { failure: decision.failure } : {}) },
      () =>
        [
          `${headline(v)} ${target.upstream}/${target.repository}@${manifest.digest}`,
          `  rule: ${v.rule} (${v.enforcementMode}${v.enforcementMode === 'dryrun' ? ', would not block' : ''}), tag mode: ${v.tagMode}`,
          ...v.reasons.map((r) => `  reason: ${r}`),
          ...attestors.map(
            (a) =>
              `  attestor "${a.attestor}": ${a.examined} examined, ${a.verified.length} verified${a.verified.map((e) => `\n    ✓ ${e.kind}${e.predicateType ? ` ${e.predicateType}` : ''} by ${e.signer} (${e.source})`).join('')}${a.rejected.map((r) => `\n    ✗ ${r}`).join('')}`,
          ),
          '',
        ].join('\n'),
    );
    // The exit code is what the proxy would do with this verdict: a dry-run deny is served.
    return v.verdict === 'allow' ? 0 : 1;
  } finally {
    await upstreams.close();
  }
}
