// Every real third-party fixture in ../shared/fixtures judged with the verdict its owning project
// expects (containers/image for the cosign signatures, sigstore-js for the public-good bundles),
// with the trust configured as an admin would: bare Rekor and Fulcio files, the builtin root, a
// PKI attestor over the Fulcio root. One row per (fixture, trust, signer) combination.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { MediaType } from '../../../src/oci/types.ts';
import type { AttestorSpec, TrustRootSpec } from '../../../src/policy/types.ts';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { COSIGN_REAL, fixturePath, loadCosignFixture, PUBLIC_GOOD } from './fixtures.ts';
import { sharedFixtures } from '../../shared-fixtures.ts';
import { MemorySource } from './memory-source.ts';

const fixtures = sharedFixtures(test, ['cosign-real', 'sigstore-public-good']);

const KEYED = 'dir-img-cosign-valid';
const KEYLESS = 'dir-img-cosign-fulcio-rekor-valid';
const GITHUB = 'https://github.com/login/oauth';
const MITR = { issuer: GITHUB, subject: 'mitr@redhat.com' };
const BRIAN = { issuer: GITHUB, subject: 'brian@dehamer.com' };
const SIG = 'dev.cosignproject.cosign/signature';
const CHAIN = 'dev.sigstore.cosign/chain';

const TRUST_ROOTS: Record<string, TrustRootSpec> = {
  // containers/image's fulcio + rekorPublicKeyPath, cosign's SIGSTORE_ROOT_FILE + SIGSTORE_REKOR_PUBLIC_KEY.
  'bare-files': { rekorKeys: [{ file: 'rekor.pub' }], fulcioCertificates: [{ file: 'fulcio_v1.crt.pem' }] },
  'fulcio-only': { fulcioCertificates: [{ file: 'fulcio_v1.crt.pem' }] },
  'rekor-only': { rekorKeys: [{ file: 'rekor.pub' }] },
};

/**
 * `accept`: a verified signature. `reject`: none. `signature-only`: the signature verifies (the
 * owner's verdict, about a blob) but the payload is not an image statement, so pullgate refuses it.
 */
type Verdict = 'accept' | 'reject' | 'signature-only';

interface Row {
  fixture: string;
  owner: 'containers/image' | 'sigstore-js' | 'cosign';
  attestor: AttestorSpec;
  edit?: (annotations: Record<string, string>) => Record<string, string>;
  expect: Verdict;
  /** For rejections: what the reason must say, so a reject for the wrong cause fails. */
  because?: RegExp;
}

const rows: Row[] = [
  // containers/image: signature/fixtures, policy `sigstoreSigned` with keyPath.
  { fixture: KEYED, owner: 'containers/image', attestor: { keys: [{ file: 'cosign.pub' }] }, expect: 'accept' },
  {
    fixture: KEYED,
    owner: 'containers/image',
    attestor: { keys: [{ file: 'cosign2.pub' }] },
    expect: 'reject',
    because: /does not verify with any key/,
  },
  {
    fixture: KEYED,
    owner: 'cosign',
    attestor: { keys: [{ file: 'cosign.pub' }] },
    edit: (a) => ({ ...a, [SIG]: (a[SIG] ?? '').replace(/.{76}/, '$&\n') }),
    expect: 'accept',
  },
  {
    fixture: KEYED,
    owner: 'cosign',
    attestor: { keys: [{ file: 'cosign.pub' }] },
    edit: (a) => ({ ...a, [SIG]: `${(a[SIG] ?? '').slice(0, 20)}A${(a[SIG] ?? '').slice(21)}` }),
    expect: 'reject',
    because: /does not verify with any key|not base64/,
  },
  {
    fixture: KEYED,
    owner: 'containers/image',
    attestor: { keys: [{ file: 'cosign.pub' }], requireTlog: true, trustRoot: 'bare-files' },
    expect: 'reject',
    because: /no transparency-log entry/,
  },
  {
    fixture: KEYED,
    owner: 'containers/image',
    attestor: { identities: [MITR] },
    expect: 'reject',
    because: /signed with a key, but attestor "a" lists no keys/,
  },
  // containers/image: fulcio (caPath fulcio_v1.crt.pem, oidcIssuer, subjectEmail) + rekorPublicKeyPath.
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [MITR], trustRoot: 'bare-files' },
    expect: 'accept',
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [{ ...MITR, subject: 'someone-else@redhat.com' }], trustRoot: 'bare-files' },
    expect: 'reject',
    because: /matches no identity/,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [{ ...MITR, issuer: 'https://accounts.google.com' }], trustRoot: 'bare-files' },
    expect: 'reject',
    because: /matches no identity/,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: {
      identities: [{ ...MITR, subjectRegExp: 'mitr@redhat' }].map(({ subject: _, ...r }) => r),
      trustRoot: 'bare-files',
    },
    expect: 'reject',
    because: /matches no identity/,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [MITR], trustRoot: 'fulcio-only' },
    expect: 'reject',
    because: /inclusion promise|tlog|transparency/i,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [MITR], trustRoot: 'rekor-only' },
    expect: 'reject',
    because: /lists no certificate authority/,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [MITR], trustRoot: 'bare-files' },
    edit: ({ [CHAIN]: _, ...a }) => a,
    expect: 'reject',
    because: /certificate chain: no path to a trusted CA certificate/,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { identities: [MITR], trustRoot: 'bare-files' },
    edit: (a) => ({ ...a, [SIG]: `${(a[SIG] ?? '').slice(0, 20)}A${(a[SIG] ?? '').slice(21)}` }),
    expect: 'reject',
  },
  { fixture: KEYLESS, owner: 'cosign', attestor: { identities: [MITR] }, expect: 'accept' },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: { keys: [{ file: 'cosign.pub' }] },
    expect: 'reject',
    because: /lists no identities and no pki/,
  },
  // containers/image: pki (caRootsPath = the Fulcio root, subjectEmail), Rekor proving the time.
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: {
      pki: { caCertificates: [{ file: 'fulcio_v1.crt.pem' }], signers: [{ email: 'mitr@redhat.com' }] },
      trustRoot: 'rekor-only',
    },
    expect: 'accept',
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: {
      pki: { caCertificates: [{ file: 'fulcio_v1.crt.pem' }], signers: [{ email: 'mitr@redhat.com' }] },
      requireTlog: false,
      trustRoot: 'fulcio-only',
    },
    // No log to check the entry against, so no proven time: the certificate expired in 2023.
    expect: 'reject',
    because: /not at .* \(the time of the decision/,
  },
  {
    fixture: KEYLESS,
    owner: 'containers/image',
    attestor: {
      pki: { caCertificates: [{ file: 'fulcio_v1.crt.pem' }], signers: [{ email: 'someone@redhat.com' }] },
      trustRoot: 'rekor-only',
    },
    expect: 'reject',
    because: /matches no signer/,
  },
];

// sigstore-js: its public-good bundles over artifact.txt, verified with the public-good root.
for (const file of [
  'v0.1-message-signature-fulcio.bundle.json',
  'v0.2-message-signature-fulcio.bundle.json',
  'v0.3-message-signature-fulcio.bundle.json',
]) {
  rows.push({ fixture: file, owner: 'sigstore-js', attestor: { identities: [BRIAN] }, expect: 'accept' });
  rows.push({
    fixture: file,
    owner: 'sigstore-js',
    attestor: { identities: [{ ...BRIAN, subject: 'someone@dehamer.com' }] },
    expect: 'reject',
    because: /matches no identity/,
  });
}
for (const file of ['v0.1-dsse-fulcio.bundle.json', 'v0.3-dsse-fulcio.bundle.json']) {
  rows.push({ fixture: file, owner: 'sigstore-js', attestor: { identities: [BRIAN] }, expect: 'signature-only' });
}
rows.push({
  fixture: 'v0.1-dsse-public-key.bundle.json',
  owner: 'sigstore-js',
  attestor: { keys: [{ file: 'key-1.pub.pem' }] },
  expect: 'signature-only',
});
rows.push({
  fixture: 'v0.1-dsse-public-key.bundle.json',
  owner: 'sigstore-js',
  attestor: { keys: [{ file: '../cosign-real/cosign.pub' }] },
  expect: 'reject',
  because: /does not verify with any key/,
});

function serve(row: Row): { source: MemorySource; image: { registry: string; repository: string; digest: string } } {
  if (row.fixture.endsWith('.bundle.json')) {
    const source = new MemorySource();
    const digest = source.putManifest('blob/app', readFileSync(new URL('artifact.txt', PUBLIC_GOOD)));
    source.putArtifact(
      'blob/app',
      [{ mediaType: MediaType.sigstoreBundleV03, bytes: readFileSync(new URL(row.fixture, PUBLIC_GOOD)) }],
      { subject: digest, artifactType: MediaType.sigstoreBundleV03 },
    );
    return { source, image: { registry: 'registry.test', repository: 'blob/app', digest } };
  }
  const { source, image } = loadCosignFixture(row.fixture, 'test/app', row.edit);
  return { source, image };
}

function describeRow(row: Row, i: number): string {
  const trust = row.attestor.trustRoot ?? 'public-good';
  const who = row.attestor.keys
    ? `key ${row.attestor.keys[0]?.file}`
    : row.attestor.pki
      ? `pki ${row.attestor.pki.signers.map((s) => s.email).join(',')}`
      : `identity ${row.attestor.identities?.map((id) => id.subject ?? id.subjectRegExp).join(',')}`;
  return `#${i + 1} ${row.owner}: ${row.fixture}${row.edit ? ' (edited)' : ''}, ${who}, trust ${trust} → ${row.expect}`;
}

for (const [i, row] of rows.entries()) {
  fixtures.test(describeRow(row, i), async (t) => {
    const baseDir = fixturePath('', row.fixture.endsWith('.bundle.json') ? PUBLIC_GOOD : COSIGN_REAL);
    const attestor = compileAttestor('a', row.attestor, { baseDir, trustRoots: TRUST_ROOTS });
    const { source, image } = serve(row);
    const facts = (await verifyImage(source, image, [attestor])).get('a')!;
    const verdict: Verdict =
      facts.verified.length > 0
        ? 'accept'
        : facts.rejected.some((r) => /^.*: signature by .+ verifies for attestor "a", but /.test(r))
          ? 'signature-only'
          : 'reject';
    t.is(verdict, row.expect, facts.rejected.join('\n'));
    if (row.because) t.regex(facts.rejected.join('\n'), row.because);
  });
}

fixtures.test(
  'the interop table covers every real fixture in ../shared/fixtures (cosign-real, sigstore-public-good)',
  (t) => {
    const covered = new Set(rows.map((r) => r.fixture));
    for (const fixture of [KEYED, KEYLESS]) t.true(covered.has(fixture), fixture);
    const bundles =
      readFileSync(new URL('README.md', PUBLIC_GOOD), 'utf8').match(/v0\.\d-[a-z-]+\.bundle\.json/g) ?? [];
    t.true(bundles.length >= 6);
    for (const bundle of bundles) t.true(covered.has(bundle), bundle);
    t.true(rows.filter((r) => r.expect === 'accept').length >= 8);
    t.true(rows.filter((r) => r.expect === 'reject').length >= 15);
  },
);
