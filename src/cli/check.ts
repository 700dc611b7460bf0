// `pullgate check IMAGE`: what the running proxy would serve for an image, asked of the proxy
// itself (its admin API runs the same steps as a pull, without writing anything): pins, revocations,
// grants, dry runs, the policy and stale serving. `--offline` (or `--policy FILE`) judges the
// upstream's current digest with a policy file alone, and says so. Exit 0 served, 1 refused.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { Decider } from '../gate/decider.ts';
import { registryEvidenceSource } from '../gate/evidence-source.ts';
import { isDigest } from '../oci/reference.ts';
import { createLogger } from '../ops/log.ts';
import { Metrics } from '../ops/metrics.ts';
import { loadPolicyFile, parsePolicy, EMBEDDED_POLICY } from '../policy/load.ts';
import { routeRequest } from '../proxy/route.ts';
import { Upstreams } from '../oci/upstreams.ts';
import type { Explanation } from '../gate/types.ts';
import { clientOf } from './admin-commands.ts';
import type { Output } from './output.ts';

export async function check(args: string[], out: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      policy: { type: 'string', short: 'p' },
      json: { type: 'boolean' },
      offline: { type: 'boolean' },
      explain: { type: 'boolean' },
      'admin-url': { type: 'string' },
      token: { type: 'string' },
    },
  });
  const [imageText] = positionals;
  if (!imageText) {
    out.err('usage: pullgate check REGISTRY/REPOSITORY[:TAG|@DIGEST] [--config FILE] [--policy FILE] [--json]\n');
    return 2;
  }
  if (!values.offline && values.policy === undefined) return checkOnline(imageText, values, out);
  const config = loadConfig(values.config);
  const policyFile = values.policy ?? config.policyFile;
  out.err(
    'offline check: the policy alone, on the digest the upstream serves now; pins, revocations, grants and stale serving are not consulted (leave out --offline/--policy to ask the running proxy)\n',
  );
  const policy = policyFile
    ? loadPolicyFile(policyFile)
    : parsePolicy(EMBEDDED_POLICY, { file: '<embedded policy>', baseDir: process.cwd() });
  const upstreams = new Upstreams(config);
  try {
    // The same routing as a pull through the proxy: only allowlisted registries, validated names.
    const at = imageText.lastIndexOf('@');
    const colon = imageText.lastIndexOf(':');
    const [name, reference] =
      at >= 0
        ? [imageText.slice(0, at), imageText.slice(at + 1)]
        : colon > imageText.lastIndexOf('/')
          ? [imageText.slice(0, colon), imageText.slice(colon + 1)]
          : [imageText, 'latest'];
    const target = routeRequest(`/v2/${name}/manifests/${reference}`, undefined, upstreams);
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
          `${v.judgement === 'allow' ? 'ALLOW' : 'DENY'} ${target.upstream}/${target.repository}@${manifest.digest}`,
          `  rule: ${v.rule} (${v.enforcementMode}${v.enforcementMode === 'dryrun' ? ', would not block' : ''}), tag mode: ${v.tagMode}`,
          ...v.reasons.map((r) => `  reason: ${r}`),
          ...attestors.map(
            (a) =>
              `  attestor "${a.attestor}": ${a.examined} examined, ${a.verified.length} verified${a.verified.map((e) => `\n    ✓ ${e.kind}${e.predicateType ? ` ${e.predicateType}` : ''} by ${e.signer} (${e.source})`).join('')}${a.rejected.map((r) => `\n    ✗ ${r}`).join('')}`,
          ),
          '',
        ].join('\n'),
    );
    return v.judgement === 'allow' ? 0 : 1;
  } finally {
    await upstreams.close();
  }
}

interface OnlineValues {
  config?: string | undefined;
  json?: boolean | undefined;
  explain?: boolean | undefined;
  'admin-url'?: string | undefined;
  token?: string | undefined;
}

/** Asks the running proxy, through its admin API, exactly what it would serve now. */
async function checkOnline(imageText: string, values: OnlineValues, out: Output): Promise<number> {
  const client = clientOf({
    ...(values.config ? { config: values.config } : {}),
    ...(values['admin-url'] ? { 'admin-url': values['admin-url'] } : {}),
    ...(values.token ? { token: values.token } : {}),
  });
  const e = await client.call<Explanation>('GET', `/api/v1/check?image=${encodeURIComponent(imageText)}`);
  out.result(values.json, e, () =>
    [
      `${e.served ? 'SERVED' : 'REFUSED'} ${e.image}${e.digest ? ` → ${e.digest}` : ''}`,
      `  ${e.message}`,
      ...(values.explain || !e.served ? e.steps.map((s) => `  ${s.step}: ${s.outcome}`) : []),
      '',
    ].join('\n'),
  );
  return e.served ? 0 : 1;
}
