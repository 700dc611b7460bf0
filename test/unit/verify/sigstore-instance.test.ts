// Keyless verification against a Sigstore instance made by the test: its own Fulcio-like CA,
// Rekor-like log and CT log, described by a trusted_root.json written to a temp dir.
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MediaType } from '../../../src/oci/types.ts';
import type { AttestorSpec } from '../../../src/policy/types.ts';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { SigstoreInstance, type Leaf, type LeafOptions } from '../../harness/sigstore/instance.ts';
import {
  dsseBundle,
  inTotoStatement,
  messageBundle,
  signAttestationLayer,
  signSimpleSigning,
  simpleSigningPayload,
  type SignedLayer,
  type Signer,
} from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const ISSUER = 'https://oidc.test.invalid';
const EMAIL = 'dev@example.test';
const T0 = new Date('2024-05-01T12:00:00Z');
const minutes = (n: number): Date => new Date(T0.getTime() + n * 60_000);
const NOW = new Date('2025-01-01T00:00:00Z');

let dir = '';
let sigstore: SigstoreInstance;
let foreign: SigstoreInstance;
test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pullgate-sigstore-'));
  sigstore = await SigstoreInstance.create();
  foreign = await SigstoreInstance.create();
  await sigstore.writeTrustedRoot(dir, 'full.json');
  await sigstore.writeTrustedRoot(dir, 'no-ct.json', { ctlogs: true });
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function attestor(name: string, spec: AttestorSpec, root = 'full'): ReturnType<typeof compileAttestor> {
  return compileAttestor(
    name,
    { trustRoot: root, ...spec },
    { baseDir: dir, trustRoots: { full: { file: 'full.json' }, 'no-ct': { file: 'no-ct.json' } } },
  );
}

const me = (spec: Partial<AttestorSpec> = {}) =>
  attestor('me', { identities: [{ issuer: ISSUER, subject: EMAIL }], ...spec });

async function leaf(opts: Partial<LeafOptions> = {}, instance = sigstore): Promise<Signer & { leaf: Leaf }> {
  const issued = await instance.issue({ email: EMAIL, issuer: ISSUER, notBefore: T0, notAfter: minutes(10), ...opts });
  return { kind: 'certificate', leaf: issued, instance };
}

function image(): {
  source: MemorySource;
  digest: string;
  ref: { registry: string; repository: string; digest: string };
} {
  const source = new MemorySource();
  const digest = source.putManifest(
    'app',
    {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: {},
      layers: [],
      annotations: { n: String(Math.random()) },
    },
    'v1',
  );
  return { source, digest, ref: { registry: 'registry.test', repository: 'app', digest } };
}

function attachSig(source: MemorySource, digest: string, layer: SignedLayer): void {
  source.putArtifact('app', [{ mediaType: MediaType.cosignSimpleSigning, ...layer }], {
    tag: `${digestTag(digest)}.sig`,
  });
}

async function verdict(
  spec: {
    signer?: Signer;
    layer?: (digest: string) => SignedLayer;
    attestors?: ReturnType<typeof compileAttestor>[];
    now?: Date;
  } = {},
) {
  const { source, digest, ref } = image();
  const signer = spec.signer ?? (await leaf());
  attachSig(
    source,
    digest,
    spec.layer
      ? spec.layer(digest)
      : signSimpleSigning(simpleSigningPayload(digest), signer, { tlog: { instance: sigstore, at: minutes(1) } }),
  );
  const facts = await verifyImage(source, ref, spec.attestors ?? [me()], { now: spec.now ?? NOW });
  return facts.get((spec.attestors ?? [me()])[0]!.name)!;
}

test('a keyless signature from the test instance is accepted for its identity', async (t) => {
  const facts = await verdict();
  t.deepEqual(facts.rejected, []);
  t.like(facts.verified[0], { kind: 'signature', signer: `${ISSUER} ${EMAIL}` });
});

test('issuer extension v1 only, v2 only, and a URI SAN matched by an anchored pattern are all read', async (t) => {
  for (const issuerExtensions of ['v1', 'v2'] as const) {
    const facts = await verdict({ signer: await leaf({ issuerExtensions }) });
    t.is(facts.verified.length, 1, issuerExtensions);
  }
  const uri = 'https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main';
  const workload = await leaf({ email: undefined, uri });
  const ok = await verdict({
    signer: workload,
    attestors: [
      attestor('wf', {
        identities: [
          { issuer: ISSUER, subjectRegExp: 'https://github\\.com/org/repo/\\.github/workflows/.*@refs/heads/main' },
        ],
      }),
    ],
  });
  t.is(ok.verified[0]?.signer, `${ISSUER} ${uri}`);
  const other = await verdict({
    signer: workload,
    attestors: [
      attestor('wf', { identities: [{ issuer: ISSUER, subjectRegExp: 'https://github\\.com/org/other/.*' }] }),
    ],
  });
  t.deepEqual(other.verified, []);
});

test('another identity or another issuer is denied', async (t) => {
  const signer = await leaf();
  const subject = await verdict({
    signer,
    attestors: [attestor('s', { identities: [{ issuer: ISSUER, subject: 'other@example.test' }] })],
  });
  t.regex(
    subject.rejected[0] ?? '',
    /certificate identity \(issuer https:\/\/oidc.test.invalid, subject dev@example.test\) matches no identity of attestor "s"/,
  );
  const issuer = await verdict({
    signer,
    attestors: [attestor('i', { identities: [{ issuer: 'https://accounts.google.com', subject: EMAIL }] })],
  });
  t.deepEqual(issuer.verified, []);
  t.regex(issuer.rejected[0] ?? '', /matches no identity of attestor "i"/);
});

test('a certificate used outside its validity (log time after notAfter or before notBefore) is denied', async (t) => {
  const signer = await leaf();
  for (const at of [minutes(11), minutes(-1)]) {
    const facts = await verdict({
      signer,
      layer: (digest) => signSimpleSigning(simpleSigningPayload(digest), signer, { tlog: { instance: sigstore, at } }),
    });
    t.deepEqual(facts.verified, [], at.toISOString());
    t.regex(facts.rejected[0] ?? '', /certificate is not valid or expired at the specified date/);
  }
});

test('a keyless signature without a transparency-log entry is denied', async (t) => {
  const signer = await leaf();
  const facts = await verdict({ signer, layer: (digest) => signSimpleSigning(simpleSigningPayload(digest), signer) });
  t.deepEqual(facts.verified, []);
  t.regex(facts.rejected[0] ?? '', /no transparency-log entry, but keyless verification requires one/);
  // Even with requireTlog: false a certificate needs a trusted time to be judged at.
  const lax = await verdict({
    signer,
    layer: (digest) => signSimpleSigning(simpleSigningPayload(digest), signer),
    attestors: [me({ requireTlog: false })],
  });
  t.regex(lax.rejected[0] ?? '', /expected 1 timestamps, got 0/);
});

test('a log entry signed by a log outside the trust root, or in the future, is denied', async (t) => {
  const signer = await leaf();
  const facts = await verdict({
    signer,
    layer: (digest) =>
      signSimpleSigning(simpleSigningPayload(digest), signer, { tlog: { instance: foreign, at: minutes(1) } }),
  });
  t.regex(facts.rejected[0] ?? '', /inclusion promise could not be verified/);
  const early = await verdict({ signer, now: new Date(T0.getTime() - 3_600_000) });
  t.regex(early.rejected[0] ?? '', /claims integration at 2024-05-01T12:01:00.000Z, in the future/);
});

test('a log entry for another signature is denied', async (t) => {
  const signer = await leaf();
  const facts = await verdict({
    signer,
    layer: (digest) => {
      const real = signSimpleSigning(simpleSigningPayload(digest), signer);
      const unrelated = signSimpleSigning(simpleSigningPayload('sha256:' + '0'.repeat(64)), signer, {
        tlog: { instance: sigstore, at: minutes(1) },
      });
      return {
        ...real,
        annotations: {
          ...real.annotations,
          'dev.sigstore.cosign/bundle': unrelated.annotations['dev.sigstore.cosign/bundle']!,
        },
      };
    },
  });
  t.deepEqual(facts.verified, []);
  t.regex(facts.rejected[0] ?? '', /signature mismatch/);
});

test('a certificate from another CA is denied', async (t) => {
  const facts = await verdict({ signer: await leaf({}, foreign) });
  t.regex(facts.rejected[0] ?? '', /certificate chain: no path to a trusted CA certificate in trust root/);
});

test('SCTs: required when the trust root lists CT logs, not when it lists none', async (t) => {
  const noSct = await leaf({ sct: false });
  const strict = await verdict({ signer: noSct });
  t.regex(strict.rejected[0] ?? '', /expected 1 SCTs, got 0/);
  const privateRoot = await verdict({
    signer: noSct,
    attestors: [attestor('p', { identities: [{ issuer: ISSUER, subject: EMAIL }] }, 'no-ct')],
  });
  t.is(privateRoot.verified.length, 1);
});

test('keyed signatures: requireTlog true denies one without a log entry and accepts one the trusted log vouches for', async (t) => {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicKeyPem = k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const signer: Signer = { kind: 'key', privateKey: k.privateKey, publicKeyPem };
  const strict = attestor('ci', { keys: [{ pem: publicKeyPem }], requireTlog: true });
  const without = await verdict({
    signer,
    layer: (d) => signSimpleSigning(simpleSigningPayload(d), signer),
    attestors: [strict],
  });
  t.regex(without.rejected[0] ?? '', /no transparency-log entry, but attestor "ci" requires one/);
  const logged = await verdict({ signer, attestors: [strict] });
  t.deepEqual(logged.rejected, []);
  t.is(logged.verified.length, 1);
  const lax = await verdict({
    signer,
    layer: (d) => signSimpleSigning(simpleSigningPayload(d), signer),
    attestors: [attestor('ci', { keys: [{ pem: publicKeyPem }] })],
  });
  t.is(lax.verified.length, 1);
});

test('Sigstore bundles as OCI 1.1 referrers: a cosign/sign/v1 DSSE statement and a message signature over the manifest count as signatures', async (t) => {
  const signer = await leaf();
  const { source, digest, ref } = image();
  const tlog = { instance: sigstore, at: minutes(2) };
  source.putArtifact(
    'app',
    [
      {
        mediaType: MediaType.sigstoreBundleV03,
        bytes: dsseBundle(inTotoStatement(digest, 'https://sigstore.dev/cosign/sign/v1', {}), signer, { tlog }),
      },
    ],
    { subject: digest, artifactType: MediaType.sigstoreBundleV03 },
  );
  const manifest = source.manifests.get(`app@${digest}`)!.bytes;
  source.putArtifact(
    'app',
    [{ mediaType: MediaType.sigstoreBundleV03, bytes: messageBundle(manifest, signer, { tlog }) }],
    { subject: digest, artifactType: MediaType.sigstoreBundleV03 },
  );
  const facts = (await verifyImage(source, ref, [me()], { now: NOW })).get('me')!;
  t.deepEqual(facts.rejected, []);
  t.deepEqual(
    facts.verified.map((v) => [v.kind, v.predicateType]).sort(),
    [
      ['signature', 'https://sigstore.dev/cosign/sign/v1'],
      ['signature', undefined],
    ].sort(),
  );
});

test('a keyless cosign attestation (.att with certificate and intoto log entry) is accepted with its predicate', async (t) => {
  const signer = await leaf();
  const { source, digest, ref } = image();
  const predicate = { scanner: { result: 'clean' } };
  source.putArtifact(
    'app',
    [
      {
        mediaType: MediaType.dsseEnvelope,
        ...signAttestationLayer(
          inTotoStatement(digest, 'https://cosign.sigstore.dev/attestation/vuln/v1', predicate),
          signer,
          { tlog: { instance: sigstore, at: minutes(3) } },
        ),
      },
    ],
    { tag: `${digestTag(digest)}.att` },
  );
  const facts = await verifyImage(
    source,
    ref,
    [me(), attestor('other', { identities: [{ issuer: ISSUER, subject: 'x@example.test' }] })],
    { now: NOW },
  );
  t.like(facts.get('me')?.verified[0], {
    kind: 'attestation',
    predicateType: 'https://cosign.sigstore.dev/attestation/vuln/v1',
    signer: `${ISSUER} ${EMAIL}`,
  });
  t.deepEqual(facts.get('me')?.verified[0]?.predicate, predicate);
  t.deepEqual(facts.get('other')?.verified, []);
});
