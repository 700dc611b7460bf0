// Real Sigstore public-good bundles (sigstore-js test data) through the OCI 1.1 referrer path:
// verified offline against the trusted root embedded in @sigstore/tuf's seeds.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { MediaType } from '../../../src/oci/types.ts';
import type { AttestorSpec } from '../../../src/policy/types.ts';
import { sharedFixtures } from '../../shared-fixtures.ts';
import { fixturePath, PUBLIC_GOOD } from './fixtures.ts';
import { MemorySource } from './memory-source.ts';

const IDENTITY = { issuer: 'https://github.com/login/oauth', subject: 'brian@dehamer.com' };
const ctx = { baseDir: fixturePath('', PUBLIC_GOOD), trustRoots: {} };
const fixtures = sharedFixtures(test, [
  ...[
    'artifact.txt',
    'key-1.pub.pem',
    'v0.1-dsse-fulcio.bundle.json',
    'v0.1-dsse-public-key.bundle.json',
    'v0.1-message-signature-fulcio.bundle.json',
    'v0.2-message-signature-fulcio.bundle.json',
    'v0.3-dsse-fulcio.bundle.json',
    'v0.3-message-signature-fulcio.bundle.json',
  ].map((f) => `sigstore-public-good/${f}`),
  'cosign-real/cosign.pub',
]);

/** The bundles sign artifact.txt, so the test registry serves those bytes as the "image". */
function serve(bundleFile: string): { source: MemorySource; digest: string } {
  const source = new MemorySource();
  const digest = source.putManifest('blob/app', readFileSync(new URL('artifact.txt', PUBLIC_GOOD)));
  source.putArtifact(
    'blob/app',
    [{ mediaType: MediaType.sigstoreBundleV03, bytes: readFileSync(new URL(bundleFile, PUBLIC_GOOD)) }],
    { subject: digest, artifactType: MediaType.sigstoreBundleV03 },
  );
  return { source, digest };
}

for (const file of [
  'v0.1-message-signature-fulcio.bundle.json',
  'v0.2-message-signature-fulcio.bundle.json',
  'v0.3-message-signature-fulcio.bundle.json',
]) {
  fixtures.test(`${file}: the message signature verifies offline for the signer's identity only`, async (t) => {
    const { source, digest } = serve(file);
    const facts = await verifyImage(source, { registry: 'r', repository: 'blob/app', digest }, [
      compileAttestor('brian', { identities: [IDENTITY] }, ctx),
      compileAttestor('someone', { identities: [{ ...IDENTITY, subject: 'someone@dehamer.com' }] }, ctx),
    ]);
    t.deepEqual(facts.get('brian')?.rejected, []);
    t.like(facts.get('brian')?.verified[0], { kind: 'signature', signer: `${IDENTITY.issuer} ${IDENTITY.subject}` });
    t.regex(facts.get('brian')?.verified[0]?.source ?? '', /^referrer sha256:[0-9a-f]{12}… layer 0$/);
    t.deepEqual(facts.get('someone')?.verified, []);
    t.regex(facts.get('someone')?.rejected[0] ?? '', /matches no identity of attestor "someone"/);
  });
}

fixtures.test('a message-signature bundle is not accepted for another digest than the one it signs', async (t) => {
  const { source } = serve('v0.3-message-signature-fulcio.bundle.json');
  const other = source.putManifest('blob/app', Buffer.from('{"schemaVersion":2}'));
  // Make the bundle a referrer of the other digest too.
  source.putArtifact(
    'blob/app',
    [
      {
        mediaType: MediaType.sigstoreBundleV03,
        bytes: readFileSync(new URL('v0.3-message-signature-fulcio.bundle.json', PUBLIC_GOOD)),
      },
    ],
    { subject: other, artifactType: MediaType.sigstoreBundleV03 },
  );
  const facts = await verifyImage(source, { registry: 'r', repository: 'blob/app', digest: other }, [
    compileAttestor('brian', { identities: [IDENTITY] }, ctx),
  ]);
  t.deepEqual(facts.get('brian')?.verified, []);
  t.regex(facts.get('brian')?.rejected[0] ?? '', /bundle signs sha256:68e656b251e6[0-9a-f]+, not the served sha256:/);
});

// These envelopes carry a text/plain payload, not an in-toto statement: the signature must
// verify and the content check must then refuse it, showing both stages ran.
const DSSE_CASES: [string, AttestorSpec][] = [
  ['v0.1-dsse-fulcio.bundle.json', { identities: [IDENTITY] }],
  ['v0.3-dsse-fulcio.bundle.json', { identities: [IDENTITY] }],
  ['v0.1-dsse-public-key.bundle.json', { keys: [{ file: 'key-1.pub.pem' }] }],
];
for (const [file, attestor] of DSSE_CASES) {
  fixtures.test(
    `${file}: the DSSE signature verifies offline, and a non-in-toto payload is still refused`,
    async (t) => {
      const { source, digest } = serve(file);
      const facts = await verifyImage(source, { registry: 'r', repository: 'blob/app', digest }, [
        compileAttestor('a', attestor, ctx),
      ]);
      t.deepEqual(facts.get('a')?.verified, []);
      t.regex(
        facts.get('a')?.rejected[0] ?? '',
        /signature by .+ verifies for attestor "a", but DSSE payload type is "text\/plain"/,
      );
    },
  );
}

fixtures.test('the DSSE public-key bundle does not verify with another key', async (t) => {
  const { source, digest } = serve('v0.1-dsse-public-key.bundle.json');
  const other = compileAttestor('other', { keys: [{ file: fixturePath('cosign-real/cosign.pub') }] }, ctx);
  const facts = await verifyImage(source, { registry: 'r', repository: 'blob/app', digest }, [other]);
  t.regex(facts.get('other')?.rejected[0] ?? '', /signature does not verify with any key of attestor "other"/);
});
