// An attestor's signaturesRepository: evidence looked up in another repository, possibly on
// another allowlisted registry, instead of (or with alsoImageRepository, beside) the image's own.
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { MediaType } from '../../../src/oci/types.ts';
import type { AttestorSpec } from '../../../src/policy/types.ts';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import {
  dsseBundle,
  inTotoStatement,
  messageBundle,
  signSimpleSigning,
  simpleSigningPayload,
  type Signer,
} from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyPem = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const signer: Signer = { kind: 'key', privateKey: keys.privateKey, publicKeyPem };
const attestor = (name: string, spec: Partial<AttestorSpec> = {}) =>
  compileAttestor(name, { keys: [{ pem: publicKeyPem }], ...spec }, { baseDir: '.', trustRoots: {} });

const IMAGE_REGISTRY = 'registry.test';
const SIGS = 'sigs.test';

function setup() {
  const source = new MemorySource(IMAGE_REGISTRY);
  const sigs = source.addRegistry(SIGS);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [], n: Math.random() }));
  const digest = source.putManifest('acme/app', manifest, 'v1');
  const image = { registry: IMAGE_REGISTRY, repository: 'acme/app', digest };
  /** A cosign `.sig` artifact in `repository` of `where`. */
  const sign = (where: MemorySource, repository: string) =>
    where.putArtifact(
      repository,
      [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(simpleSigningPayload(digest), signer) }],
      { tag: `${digestTag(digest)}.sig` },
    );
  return { source, sigs, manifest, digest, image, sign };
}

test('signatures stored in a repository on another allowlisted registry verify, labelled with where they were found', async (t) => {
  const { source, sigs, image, sign } = setup();
  sign(sigs, 'acme/signatures');
  const facts = await verifyImage(source, image, [attestor('ci', { signaturesRepository: `${SIGS}/acme/signatures` })]);
  t.deepEqual(facts.get('ci')?.rejected, []);
  t.regex(
    facts.get('ci')?.verified[0]?.source ?? '',
    /^sigs\.test\/acme\/signatures tag sha256-[0-9a-f]{12}….sig layer 0$/,
  );
  // Instead of the image's own repository: nothing was asked of it.
  t.false(
    source.calls.some((c) => c.includes('acme/app')),
    source.calls.join('\n'),
  );
});

test("without alsoImageRepository the image's own signatures do not count; with it they do", async (t) => {
  const { source, image, sign } = setup();
  sign(source, 'acme/app');
  const facts = await verifyImage(source, image, [
    attestor('instead', { signaturesRepository: `${SIGS}/acme/signatures` }),
    attestor('beside', { signaturesRepository: `${SIGS}/acme/signatures`, alsoImageRepository: true }),
    attestor('own'),
  ]);
  t.deepEqual(facts.get('instead'), { attestor: 'instead', verified: [], rejected: [], examined: 0 });
  t.is(facts.get('beside')?.verified.length, 1);
  t.regex(facts.get('beside')?.verified[0]?.source ?? '', /^tag sha256-/);
  t.is(facts.get('own')?.verified.length, 1);
  // The image's repository was read once for both attestors that look there.
  t.is(source.calls.filter((c) => c.startsWith('manifest acme/app:sha256-') && c.endsWith('.sig')).length, 1);
});

test("another repository on the image's own registry is read through the same source", async (t) => {
  const { source, image, sign } = setup();
  sign(source, 'acme/signatures');
  const facts = await verifyImage(source, image, [
    attestor('ci', { signaturesRepository: `${IMAGE_REGISTRY}/acme/signatures` }),
  ]);
  t.is(facts.get('ci')?.verified.length, 1);
  t.regex(facts.get('ci')?.verified[0]?.source ?? '', /^registry\.test\/acme\/signatures tag /);
});

test('a registry that is not allowlisted is never contacted: the reason names it and the fix', async (t) => {
  const { source, sigs, image, sign } = setup();
  sign(sigs, 'acme/signatures');
  const facts = await verifyImage(source, image, [
    attestor('ci', { signaturesRepository: 'elsewhere.test/acme/signatures' }),
  ]);
  t.deepEqual(facts.get('ci')?.verified, []);
  t.deepEqual(facts.get('ci')?.rejected, [
    'signaturesRepository elsewhere.test/acme/signatures: registry elsewhere.test is not allowlisted, so it is not contacted; add it to upstreams in the configuration, or correct signaturesRepository',
  ]);
  t.is(facts.get('ci')?.examined, 1);
  t.deepEqual(source.asked, ['elsewhere.test']);
  t.deepEqual(sigs.calls, []);
});

test('cosign 3 bundles as referrers in the signatures repository, a message signature re-read from the image repository', async (t) => {
  const { source, sigs, manifest, digest, image } = setup();
  // The referrer's subject is the image; the signatures repository holds a copy of its manifest.
  sigs.putManifest('acme/signatures', manifest);
  for (const bytes of [
    dsseBundle(inTotoStatement(digest, 'https://sigstore.dev/cosign/sign/v1', {}), signer),
    messageBundle(manifest, signer),
  ]) {
    sigs.putArtifact('acme/signatures', [{ mediaType: MediaType.sigstoreBundleV03, bytes }], {
      subject: digest,
      artifactType: MediaType.sigstoreBundleV03,
    });
  }
  const facts = await verifyImage(source, image, [attestor('ci', { signaturesRepository: `${SIGS}/acme/signatures` })]);
  t.deepEqual(facts.get('ci')?.rejected, []);
  t.is(facts.get('ci')?.verified.length, 2);
  for (const v of facts.get('ci')?.verified ?? []) t.regex(v.source, /^sigs\.test\/acme\/signatures referrer sha256:/);
  // The signed manifest is the one served, read from the image's own registry.
  t.true(source.calls.includes(`manifest acme/app@${digest}`));
});
