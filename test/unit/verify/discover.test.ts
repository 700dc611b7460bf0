// Evidence discovery: what is opened, what is bounded, and which errors propagate.
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { RegistryError } from '../../../src/oci/errors.ts';
import { MediaType, type ImageIndex } from '../../../src/oci/types.ts';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { DecisionBudget } from '../../../src/verify/budget.ts';
import { digestTag, discoverEvidence, DEFAULT_DISCOVERY_LIMITS } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import {
  dsseBundle,
  inTotoStatement,
  signSimpleSigning,
  simpleSigningPayload,
  type Signer,
} from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyPem = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const signer: Signer = { kind: 'key', privateKey: keys.privateKey, publicKeyPem };
const ci = () => compileAttestor('ci', { keys: [{ pem: publicKeyPem }] }, { baseDir: '.', trustRoots: {} });

function signedImage(): {
  source: MemorySource;
  digest: string;
  ref: { registry: string; repository: string; digest: string };
} {
  const source = new MemorySource();
  const digest = source.putManifest(
    'app',
    { schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] },
    'v1',
  );
  source.putArtifact(
    'app',
    [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(simpleSigningPayload(digest), signer) }],
    { tag: `${digestTag(digest)}.sig` },
  );
  return { source, digest, ref: { registry: 'r', repository: 'app', digest } };
}

const unavailable = () => new RegistryError('unavailable', 'UNAVAILABLE', 'upstream registry.test answered 503');

for (const [what, key] of [
  ['the .sig manifest', (d: string) => `${digestTag(d)}.sig`],
  ['the .att manifest', (d: string) => `${digestTag(d)}.att`],
  ['the referrers', (d: string) => `referrers:${d}`],
] as const) {
  test(`an error other than 404 fetching ${what} propagates instead of meaning "unsigned"`, async (t) => {
    const { source, digest, ref } = signedImage();
    const error = unavailable();
    source.failures.set(key(digest), error);
    const thrown = await t.throwsAsync(verifyImage(source, ref, [ci()]));
    t.is(thrown, error);
  });
}

test('an outage fetching a signature blob is remembered on the budget: "nothing verified" is then no judgement', async (t) => {
  const { source, digest, ref } = signedImage();
  const sig = JSON.parse(source.manifests.get(`app:${digestTag(digest)}.sig`)!.bytes.toString()) as {
    layers: { digest: string }[];
  };
  const error = unavailable();
  source.failures.set(sig.layers[0]!.digest, error);
  const budget = new DecisionBudget();
  const facts = (await verifyImage(source, ref, [ci()], { budget })).get('ci')!;
  t.is(budget.outage, error);
  t.deepEqual(facts.verified, []);
  t.true(facts.rejected.some((r) => r.includes('sig layer 0: cannot be read: upstream registry.test answered 503')));
});

test('without attestors nothing is fetched', async (t) => {
  const { source, ref } = signedImage();
  t.deepEqual([...(await verifyImage(source, ref, [])).keys()], []);
  t.deepEqual(source.calls, []);
});

test('every referrer manifest is opened whatever the index says about it, and one about another subject is refused', async (t) => {
  const { source, digest, ref } = signedImage();
  const bundle = dsseBundle(inTotoStatement(digest, 'https://slsa.dev/provenance/v1', { ok: true }), signer);
  const real = source.putArtifact('app', [{ mediaType: MediaType.sigstoreBundleV03, bytes: bundle }], {
    subject: digest,
    artifactType: MediaType.sigstoreBundleV03,
  });
  const elsewhere = source.putManifest('app', { schemaVersion: 2, layers: [], config: {}, x: 1 });
  const stray = source.putArtifact('app', [{ mediaType: MediaType.sigstoreBundleV03, bytes: bundle }], {
    subject: elsewhere,
    artifactType: MediaType.sigstoreBundleV03,
  });
  // An index (as from the tag fallback) listing both, with misleading artifact types and annotations.
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [real, stray].map((d) => ({
      ...source.descriptorOf('app', d),
      artifactType: 'application/spdx+json',
      annotations: { 'dev.sigstore.bundle.content': 'nothing' },
    })),
  };
  source.referrers = async () => index;
  const facts = (await verifyImage(source, ref, [ci()])).get('ci')!;
  t.deepEqual(facts.verified.map((v) => v.kind).sort(), ['attestation', 'signature']);
  t.true(source.calls.includes(`manifest app@${real}`));
  t.true(facts.rejected.some((r) => r.includes(`its subject is ${elsewhere}, not ${digest}`)));
});

test('a listed referrer the registry does not have is noted, not fatal', async (t) => {
  const { source, ref } = signedImage();
  source.referrers = async () => ({
    schemaVersion: 2,
    manifests: [{ mediaType: MediaType.ociManifest, digest: 'sha256:' + '1'.repeat(64), size: 10 }],
  });
  const facts = (await verifyImage(source, ref, [ci()])).get('ci')!;
  t.is(facts.verified.length, 1);
  t.true(facts.rejected.some((r) => r.includes('listed as a referrer but the registry does not have it')));
});

test('evidence manifests, layers and blob sizes are bounded', async (t) => {
  const { source, digest } = signedImage();
  for (let i = 0; i < 5; i++) {
    source.putArtifact('app', [{ mediaType: MediaType.sigstoreBundleV03, bytes: Buffer.from(`{"n":${i}}`) }], {
      subject: digest,
      artifactType: MediaType.sigstoreBundleV03,
    });
  }
  const fewManifests = await discoverEvidence(
    source,
    'app',
    digest,
    new DecisionBudget({ ...DEFAULT_DISCOVERY_LIMITS, manifests: 3 }),
  );
  t.is(fewManifests.evidence.length, 3);
  t.true(
    fewManifests.skipped.some((s) =>
      s.includes(
        '5 listed, only the first 2 were examined, evidence budget: more than 3 evidence manifests, limit 3 (limits.evidence.manifests)',
      ),
    ),
  );

  const fewLayers = await discoverEvidence(
    source,
    'app',
    digest,
    new DecisionBudget({ ...DEFAULT_DISCOVERY_LIMITS, layers: 2 }),
  );
  t.is(fewLayers.evidence.length, 2);
  t.is(
    fewLayers.skipped.filter((s) =>
      s.includes('not examined, evidence budget: more than 2 evidence layers, limit 2 (limits.evidence.layers)'),
    ).length,
    1,
  );

  source.calls.length = 0;
  const smallBlobs = await discoverEvidence(
    source,
    'app',
    digest,
    new DecisionBudget({ ...DEFAULT_DISCOVERY_LIMITS, blobBytes: 9 }),
  );
  t.true(
    smallBlobs.skipped.some((s) =>
      /sig layer 0: \d+ bytes, evidence budget: one evidence layer of \d+ bytes, limit 9 \(limits\.evidence\.blobBytes\)/.test(
        s,
      ),
    ),
  );
  const sigLayer = (
    JSON.parse(source.manifests.get(`app:${digestTag(digest)}.sig`)!.bytes.toString()) as {
      layers: { digest: string }[];
    }
  ).layers[0]!.digest;
  t.false(source.calls.includes(`blob app@${sigLayer}`), 'the oversized payload is never fetched');
  t.is(smallBlobs.evidence.length, 5);
});

test('a .sig tag holding an index, or layers of an unexpected type, is noted', async (t) => {
  const source = new MemorySource();
  const digest = source.putManifest('app', { schemaVersion: 2, config: {}, layers: [] }, 'v1');
  source.putManifest(
    'app',
    { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] },
    `${digestTag(digest)}.sig`,
    MediaType.ociIndex,
  );
  source.putArtifact('app', [{ mediaType: 'application/octet-stream', bytes: Buffer.from('x') }], {
    tag: `${digestTag(digest)}.att`,
  });
  const found = await discoverEvidence(source, 'app', digest);
  t.deepEqual(found.evidence, []);
  t.true(found.skipped.some((s) => s.includes('.sig: is an index')));
  t.true(found.skipped.some((s) => s.includes('.att layer 0: unexpected media type application/octet-stream')));
});
