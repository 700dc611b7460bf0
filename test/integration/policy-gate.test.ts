// Issue 3: the policy gate judges real signatures and attestations served by a real registry, and
// real clients (skopeo, containerd) get the verdict.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import {
  attestImage,
  buildImage,
  generateKey,
  pushImage,
  pushReferrer,
  runCommand,
  signImage,
  skopeoCopy,
  startContainerd,
  startRegistry,
  type Containerd,
  type Registry,
} from '../harness/index.ts';
import { SigstoreInstance } from '../harness/sigstore/instance.ts';
import { messageBundle } from '../harness/sigstore/sign.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';
import { sharedFixtures } from '../shared-fixtures.ts';
import { loadCosignFixture } from './real-fixture.ts';

const REG = 'registry.example.test';
const work = mkdtempSync(join(tmpdir(), 'pullgate-gate-'));
const trusted = generateKey('ecdsa-p256');
const rogue = generateKey('ecdsa-p256');
const digests: Record<string, string> = {};
let registry: Registry;
let proxy: TestProxy;
let containerd: Containerd | undefined;
let sigstore: SigstoreInstance;
const KEYED = 'cosign-real/dir-img-cosign-valid';
const KEYLESS = 'cosign-real/dir-img-cosign-fulcio-rekor-valid';
// Only the real-cosign tests need the shared fixtures; the rest of this file runs without them.
const real = sharedFixtures(test, [
  'cosign-real/cosign.pub',
  'cosign-real/cosign2.pub',
  ...[KEYED, KEYLESS].flatMap((d) => [`${d}/manifest.json`, `${d}/signature.json`]),
]);

const SLSA = {
  buildDefinition: {
    buildType: 'https://example.test/build/v1',
    externalParameters: { repository: 'https://git.example.test/acme/app' },
  },
  runDetails: { builder: { id: 'https://ci.example.test/builders/trusted' } },
};
const scan = (critical: number, finished: Date) => ({
  scanner: { uri: 'https://scanner.example.test', version: '1.0', result: { summary: { critical, high: 2 } } },
  metadata: { scanStartedOn: finished.toISOString(), scanFinishedOn: finished.toISOString() },
});

function policy(extraRules: unknown[] = []): string {
  const requireTrusted = { evaluationMode: 'requireAttestation', requireAttestors: ['trusted'] };
  const attested = [
    {
      attestor: 'trusted',
      predicateType: 'https://slsa.dev/provenance/v1',
      conditions: [
        { path: 'runDetails.builder.id', equals: 'https://ci.example.test/builders/trusted' },
        { path: 'buildDefinition.externalParameters.repository', matches: 'https://git\\.example\\.test/acme/.+' },
      ],
    },
    {
      attestor: 'trusted',
      predicateType: 'https://cosign.sigstore.dev/attestation/vuln/v1',
      conditions: [
        { path: 'scanner.result.summary.critical', lessThanOrEqual: 0 },
        { path: 'metadata.scanFinishedOn', maxAge: '7d' },
      ],
    },
  ];
  return stringify({
    apiVersion: 'pullgate.dev/v1',
    kind: 'Policy',
    trustRoots: { 'test-sigstore': { file: join(work, 'trusted_root.json') } },
    attestors: {
      trusted: { keys: [{ file: join(work, 'trusted.pub') }] },
      ...(real.present
        ? {
            'cosign-real': { keys: [{ file: real.path('cosign-real/cosign.pub') }] },
            'cosign-real-2': { keys: [{ file: real.path('cosign-real/cosign2.pub') }] },
          }
        : {}),
      mitr: { identities: [{ issuer: 'https://github.com/login/oauth', subject: 'mitr@redhat.com' }] },
      'not-mitr': { identities: [{ issuer: 'https://github.com/login/oauth', subject: 'someone@redhat.com' }] },
      'mitr-other-issuer': { identities: [{ issuer: 'https://accounts.google.com', subject: 'mitr@redhat.com' }] },
      release: {
        trustRoot: 'test-sigstore',
        identities: [
          { issuer: 'https://token.example.test', subjectRegExp: 'https://git\\.example\\.test/acme/[a-z]+/release' },
        ],
      },
      'release-other': {
        trustRoot: 'test-sigstore',
        identities: [{ issuer: 'https://token.example.test', subject: 'https://git.example.test/acme/other/release' }],
      },
    },
    allowlist: [`${REG}/allowed/*`],
    defaultRule: requireTrusted,
    rules: [
      { match: `${REG}/dry/**`, ...requireTrusted, enforcementMode: 'dryrun' },
      { match: `${REG}/demo/attested*`, ...requireTrusted, attestations: attested },
      ...(real.present
        ? [
            { match: `${REG}/real/keyed`, evaluationMode: 'requireAttestation', requireAttestors: ['cosign-real'] },
            { match: `${REG}/real/keyed-2`, evaluationMode: 'requireAttestation', requireAttestors: ['cosign-real-2'] },
          ]
        : []),
      { match: `${REG}/real/keyless`, evaluationMode: 'requireAttestation', requireAttestors: ['mitr'] },
      { match: `${REG}/real/keyless-subject`, evaluationMode: 'requireAttestation', requireAttestors: ['not-mitr'] },
      {
        match: `${REG}/real/keyless-issuer`,
        evaluationMode: 'requireAttestation',
        requireAttestors: ['mitr-other-issuer'],
      },
      { match: `${REG}/bundle/app`, evaluationMode: 'requireAttestation', requireAttestors: ['release'] },
      { match: `${REG}/bundle/other`, evaluationMode: 'requireAttestation', requireAttestors: ['release-other'] },
      ...extraRules,
    ],
  });
}

async function push(repo: string, opts: { platforms?: string[] } = {}): Promise<string> {
  const image = await buildImage(join(work, repo), '1.0', { seed: repo, ...opts });
  await pushImage(join(work, repo), '1.0', `${registry.host}/${repo}:1.0`);
  digests[repo] = image.digest;
  return image.digest;
}

test.before(async () => {
  registry = await startRegistry();
  sigstore = await SigstoreInstance.create();
  await sigstore.writeTrustedRoot(work);
  writeFileSync(join(work, 'trusted.pub'), trusted.publicPem);
  const recent = new Date(Date.now() - 86400_000);

  await signImage(registry, 'demo/signed', await push('demo/signed'), trusted.privateKey);
  for (const repo of ['demo/flight-a', 'demo/flight-b'])
    await signImage(registry, repo, await push(repo), trusted.privateKey);
  await push('demo/unsigned');
  await signImage(registry, 'demo/wrongkey', await push('demo/wrongkey'), rogue.privateKey);
  await signImage(
    registry,
    'demo/multiarch',
    await push('demo/multiarch', { platforms: ['linux/amd64', 'linux/arm64'] }),
    trusted.privateKey,
  );
  await signImage(registry, 'demo/forged', await push('demo/forged'), trusted.privateKey, {
    payloadDigest: digests['demo/signed']!,
  });
  for (const [repo, critical, builder] of [
    ['demo/attested', 0, SLSA],
    ['demo/attested-critical', 3, SLSA],
    [
      'demo/attested-builder',
      0,
      { ...SLSA, runDetails: { builder: { id: 'https://ci.example.test/builders/rogue' } } },
    ],
  ] as const) {
    const d = await push(repo);
    await signImage(registry, repo, d, trusted.privateKey);
    await attestImage(registry, repo, d, trusted.privateKey, 'https://slsa.dev/provenance/v1', builder);
    await attestImage(
      registry,
      repo,
      d,
      trusted.privateKey,
      'https://cosign.sigstore.dev/attestation/vuln/v1',
      scan(critical, recent),
    );
  }
  await push('dry/unsigned');
  await push('allowed/unsigned');
  if (real.present) {
    for (const repo of ['real/keyed', 'real/keyed-2'])
      digests[repo] = await loadCosignFixture(registry, repo, '1', real.path(KEYED));
    for (const repo of ['real/keyless', 'real/keyless-subject', 'real/keyless-issuer'])
      digests[repo] = await loadCosignFixture(registry, repo, '1', real.path(KEYLESS));
  }

  // keyless Sigstore bundle as an OCI 1.1 referrer, from the test-made Sigstore instance
  const now = new Date();
  const leaf = await sigstore.issue({
    uri: 'https://git.example.test/acme/app/release',
    issuer: 'https://token.example.test',
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 600_000),
  });
  for (const repo of ['bundle/app', 'bundle/other']) {
    const d = await push(repo);
    const manifest = Buffer.from(
      await (
        await request(`${registry.url}/v2/${repo}/manifests/${d}`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).body.arrayBuffer(),
    );
    const bundle = messageBundle(
      manifest,
      { kind: 'certificate', leaf, instance: sigstore },
      { tlog: { instance: sigstore, at: now } },
    );
    await pushReferrer(registry, repo, d, {
      artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      layerMediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      layerBytes: bundle,
      annotations: { 'dev.sigstore.bundle.content': 'message-signature' },
    });
  }

  proxy = await startTestProxy({
    policy: policy(),
    config: { upstreams: [{ host: REG, url: registry.url, insecure: true }] },
  });
});

test.after.always(async () => {
  await containerd?.stop();
  await proxy?.close();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function pull(repo: string, ref = '1.0') {
  const res = await request(`${proxy.url}/v2/${REG}/${repo}/manifests/${ref}`, {
    headers: {
      accept:
        'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json',
    },
  });
  const body = await res.body.text();
  return {
    status: res.statusCode,
    body,
    error: res.statusCode === 200 ? '' : String(JSON.parse(body).errors?.[0]?.message ?? body),
    code: res.statusCode === 200 ? '' : String(JSON.parse(body).errors?.[0]?.code),
  };
}

function denied(t: import('ava').ExecutionContext, r: Awaited<ReturnType<typeof pull>>, why: RegExp) {
  t.is(r.status, 403, r.body);
  t.is(r.code, 'DENIED');
  t.regex(r.error, why);
}

test('signed by the trusted key: admitted, and skopeo copies it', async (t) => {
  t.is((await pull('demo/signed')).status, 200);
  await skopeoCopy(`docker://${proxy.host}/${REG}/demo/signed:1.0`, `oci:${join(work, 'out-signed')}:1.0`);
  t.pass();
});

test('unsigned, wrong key and forged binding: denied with reasons naming the rule and the attestor', async (t) => {
  denied(t, await pull('demo/unsigned'), /default.*attestor "trusted"/s);
  denied(t, await pull('demo/wrongkey'), /attestor "trusted".*(not|none)/s);
  denied(t, await pull('demo/forged'), new RegExp(`names ${digests['demo/signed']}`));
  const r = await runCommand('skopeo', [
    'copy',
    '--src-tls-verify=false',
    `docker://${proxy.host}/${REG}/demo/unsigned:1.0`,
    `oci:${join(work, 'out-unsigned')}:1.0`,
  ]);
  t.not(r.code, 0);
  t.regex(r.stderr, /denied/i);
});

test('multi-arch: the signed index admits its platform manifests by digest', async (t) => {
  t.is((await pull('demo/multiarch')).status, 200);
  await skopeoCopy(`docker://${proxy.host}/${REG}/demo/multiarch:1.0`, `oci:${join(work, 'out-multi')}:1.0`, {
    all: true,
  });
  t.pass();
});

test('attestations: SLSA provenance from the trusted builder and a clean recent scan are required', async (t) => {
  t.is((await pull('demo/attested')).status, 200);
  denied(t, await pull('demo/attested-critical'), /critical/);
  denied(t, await pull('demo/attested-builder'), /runDetails\.builder\.id/);
});

real.test('real cosign keyed signature: admitted with cosign.pub, denied with cosign2.pub', async (t) => {
  t.is((await pull('real/keyed', '1')).status, 200);
  denied(t, await pull('real/keyed-2', '1'), /cosign-real-2/);
});

real.test('real cosign keyless signature (Fulcio + Rekor SET): admitted for its identity only', async (t) => {
  t.is((await pull('real/keyless', '1')).status, 200);
  denied(t, await pull('real/keyless-subject', '1'), /not-mitr/);
  denied(t, await pull('real/keyless-issuer', '1'), /mitr-other-issuer/);
});

test('keyless Sigstore bundle pushed as an OCI 1.1 referrer: admitted for its identity only', async (t) => {
  t.is((await pull('bundle/app')).status, 200);
  denied(t, await pull('bundle/other'), /release-other/);
});

test('dry-run admits and logs "would deny"; allowlisted images pass unsigned', async (t) => {
  t.is((await pull('dry/unsigned')).status, 200);
  const line = proxy.lines('decision: dry-run would deny').find((l) => String(l.image).includes('dry/unsigned'));
  t.truthy(line);
  t.is(line?.verdict, 'allow');
  t.is(line?.judgement, 'deny');
  t.is((await pull('allowed/unsigned')).status, 200);
});

test('one decision line per decision; a repeated pull reuses the cached verdict', async (t) => {
  t.is((await pull('demo/attested')).status, 200);
  t.is((await pull('demo/attested')).status, 200);
  const lines = proxy.lines('decision').filter((l) => String(l.image).includes('demo/attested:1.0'));
  t.is(lines.length, 1);
  for (const key of ['image', 'digest', 'rule', 'mode', 'verdict', 'reasons', 'ms']) t.true(key in lines[0]!, key);
});

test('containerd (proxy as its server): the signed image is pulled, the unsigned one is refused', async (t) => {
  containerd = await startContainerd();
  const ok = await containerd.pull(`${REG}/demo/signed:1.0`, {
    registry: REG,
    server: proxy.url,
    mirrors: [proxy.url],
  });
  t.is(ok.code, 0, ok.stderr);
  t.is(await containerd.imageDigest(`${REG}/demo/signed:1.0`), digests['demo/signed']);
  const refused = await containerd.pull(`${REG}/demo/unsigned:1.0`, {
    registry: REG,
    server: proxy.url,
    mirrors: [proxy.url],
  });
  t.not(refused.code, 0);
  // containerd asks with HEAD and prints the status line: the reason is in it, as in a pod's events.
  t.regex(
    refused.stderr + refused.stdout,
    /failed with status code \[manifests 1\.0\]: 403 Forbidden by pullgate: \S+ denied by policy \(default\): attestor "trusted": no signatures or attestations found/,
  );
});

/** Upstream round trips so far, by operation, from the proxy's own metrics. */
async function upstreamOps(): Promise<number> {
  const text = await (await request(`${proxy.url}/metrics`)).body.text();
  return [...text.matchAll(/^pullgate_upstream_duration_seconds_count\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

test.serial(
  'single flight: concurrent pulls of a new image share one manifest fetch and one verification',
  async (t) => {
    const before = await upstreamOps();
    t.is((await pull('demo/flight-b', digests['demo/flight-b'])).status, 200);
    const onePull = (await upstreamOps()) - before;
    const start = await upstreamOps();
    const results = await Promise.all(Array.from({ length: 8 }, () => pull('demo/flight-a', digests['demo/flight-a'])));
    t.true(results.every((r) => r.status === 200));
    t.is((await upstreamOps()) - start, onePull, 'eight concurrent pulls cost the upstream what one pull costs');
    t.is(proxy.lines('decision').filter((l) => String(l.image).includes('demo/flight-a')).length, 1);
  },
);

test.serial('a platform manifest is admitted through its index only while the index itself still is', async (t) => {
  t.is((await pull('demo/multiarch')).status, 200);
  const index = JSON.parse((await pull('demo/multiarch')).body) as { manifests: { digest: string }[] };
  const child = index.manifests[0]!.digest;
  t.is((await pull('demo/multiarch', child)).status, 200, 'unsigned itself, admitted through the signed index');
  proxy.writePolicy(policy([{ match: `${REG}/demo/multiarch`, evaluationMode: 'alwaysDeny' }]));
  t.true(proxy.proxy.policy.reload().changed);
  denied(t, await pull('demo/multiarch', child), /denied by policy/);
  proxy.writePolicy(policy());
  proxy.proxy.policy.reload();
  t.is((await pull('demo/multiarch', child)).status, 200);
});

test.serial('policy hot reload on file change is atomic and drops cached verdicts', async (t) => {
  denied(t, await pull('demo/unsigned'), /attestor "trusted"/);
  proxy.writePolicy(policy([{ match: `${REG}/demo/unsigned`, evaluationMode: 'alwaysAllow' }]));
  proxy.proxy.policy.reload();
  t.is((await pull('demo/unsigned')).status, 200);
  proxy.writePolicy('apiVersion: pullgate.dev/v1\nkind: Policy\ndefaultRule: {evaluationMode: nonsense}\n');
  const result = proxy.proxy.policy.reload();
  t.false(result.ok);
  t.regex(result.error ?? '', /evaluationMode/);
  t.is((await pull('demo/unsigned')).status, 200, 'the previous policy stays in force');
  proxy.writePolicy(policy());
  proxy.proxy.policy.reload();
});
