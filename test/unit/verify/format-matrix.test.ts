// Every evidence format in every place it can be stored (docs/verification.md's matrix): legacy
// `.sig`/`.att` tags, legacy signatures and attestations as OCI 1.1 referrers, cosign 3 bundles
// as referrers; each in the image's repository, in another repository of its registry, and in a
// repository on another allowlisted registry (signaturesRepository). Signed here with node:crypto.
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { MediaType } from '../../../src/oci/types.ts';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import {
  dsseBundle,
  inTotoStatement,
  messageBundle,
  signAttestationLayer,
  signSimpleSigning,
  simpleSigningPayload,
  type Signer,
} from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyPem = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const signer: Signer = { kind: 'key', privateKey: keys.privateKey, publicKeyPem };
const SLSA = 'https://slsa.dev/provenance/v1';
/** cosign's artifact types when it writes legacy signatures/attestations as referrers. */
const LEGACY_SIG_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const LEGACY_ATT_ARTIFACT = 'application/vnd.dev.cosign.artifact.att.v1+json';

type Store = (at: MemorySource, repository: string, digest: string, manifest: Buffer) => void;

const formats: { name: string; kind: 'signature' | 'attestation'; store: Store }[] = [
  {
    name: 'legacy .sig tag (simple signing)',
    kind: 'signature',
    store: (at, repo, digest) =>
      at.putArtifact(
        repo,
        [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(simpleSigningPayload(digest), signer) }],
        { tag: `${digestTag(digest)}.sig` },
      ),
  },
  {
    name: 'legacy .att tag (DSSE in-toto)',
    kind: 'attestation',
    store: (at, repo, digest) =>
      at.putArtifact(
        repo,
        [{ mediaType: MediaType.dsseEnvelope, ...signAttestationLayer(inTotoStatement(digest, SLSA, {}), signer) }],
        { tag: `${digestTag(digest)}.att` },
      ),
  },
  {
    name: 'legacy signature as a referrer',
    kind: 'signature',
    store: (at, repo, digest) =>
      at.putArtifact(
        repo,
        [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(simpleSigningPayload(digest), signer) }],
        { subject: digest, artifactType: LEGACY_SIG_ARTIFACT },
      ),
  },
  {
    name: 'legacy attestation as a referrer',
    kind: 'attestation',
    store: (at, repo, digest) =>
      at.putArtifact(
        repo,
        [{ mediaType: MediaType.dsseEnvelope, ...signAttestationLayer(inTotoStatement(digest, SLSA, {}), signer) }],
        { subject: digest, artifactType: LEGACY_ATT_ARTIFACT },
      ),
  },
  {
    name: 'cosign 3 bundle referrer (DSSE cosign/sign/v1)',
    kind: 'signature',
    store: (at, repo, digest) =>
      at.putArtifact(
        repo,
        [
          {
            mediaType: MediaType.sigstoreBundleV03,
            bytes: dsseBundle(inTotoStatement(digest, 'https://sigstore.dev/cosign/sign/v1', {}), signer),
          },
        ],
        { subject: digest, artifactType: MediaType.sigstoreBundleV03 },
      ),
  },
  {
    name: 'cosign 3 bundle referrer (DSSE attestation)',
    kind: 'attestation',
    store: (at, repo, digest) =>
      at.putArtifact(
        repo,
        [{ mediaType: MediaType.sigstoreBundleV03, bytes: dsseBundle(inTotoStatement(digest, SLSA, {}), signer) }],
        { subject: digest, artifactType: MediaType.sigstoreBundleV03 },
      ),
  },
  {
    name: 'Sigstore bundle referrer (message signature over the manifest)',
    kind: 'signature',
    store: (at, repo, digest, manifest) =>
      at.putArtifact(repo, [{ mediaType: MediaType.sigstoreBundleV03, bytes: messageBundle(manifest, signer) }], {
        subject: digest,
        artifactType: MediaType.sigstoreBundleV03,
      }),
  },
];

const places = [
  {
    name: "the image's repository",
    registry: 'registry.test',
    repository: 'acme/app',
    signaturesRepository: undefined,
  },
  {
    name: 'another repository of the same registry',
    registry: 'registry.test',
    repository: 'acme/signatures',
    signaturesRepository: 'registry.test/acme/signatures',
  },
  {
    name: 'a repository on another allowlisted registry',
    registry: 'sigs.test',
    repository: 'acme/signatures',
    signaturesRepository: 'sigs.test/acme/signatures',
  },
] as const;

for (const format of formats) {
  for (const place of places) {
    test(`${format.name} in ${place.name} verifies as a${format.kind === 'signature' ? ' signature' : 'n attestation'}`, async (t) => {
      const source = new MemorySource('registry.test');
      const sigs = source.addRegistry('sigs.test');
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }));
      const digest = source.putManifest('acme/app', manifest, 'v1');
      const at = place.registry === 'sigs.test' ? sigs : source;
      // Referrers name the image as subject: registries keep the subject's manifest beside them.
      if (place.repository !== 'acme/app' || at !== source) at.putManifest(place.repository, manifest);
      format.store(at, place.repository, digest, manifest);
      const attestor = compileAttestor(
        'ci',
        {
          keys: [{ pem: publicKeyPem }],
          ...(place.signaturesRepository ? { signaturesRepository: place.signaturesRepository } : {}),
        },
        { baseDir: '.', trustRoots: {} },
      );
      const facts = (
        await verifyImage(source, { registry: 'registry.test', repository: 'acme/app', digest }, [attestor])
      ).get('ci')!;
      t.deepEqual(facts.rejected, []);
      t.is(facts.verified.length, 1);
      t.is(facts.verified[0]?.kind, format.kind);
      if (place.signaturesRepository) t.true(facts.verified[0]?.source.startsWith(`${place.signaturesRepository} `));
    });
  }
}
