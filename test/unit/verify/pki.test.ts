// PKI attestors: signatures whose certificate chains to the admin's own CA certificates (made
// here with the openssl CLI), with no Fulcio and no OIDC issuer; validity at the signing time a
// log entry proves, else at the time of the decision; signers named by email, URI, DNS name or
// common name.
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MediaType } from '../../../src/oci/types.ts';
import type { AttestorSpec, PkiSignerSpec } from '../../../src/policy/types.ts';
import { AttestorConfigError, compileAttestor } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { makeNotationPki, timestampToken } from '../../harness/notation.ts';
import { OpensslCa, type IssuedCertificate } from '../../harness/pki.ts';
import { SigstoreInstance } from '../../harness/sigstore/instance.ts';
import {
  dsseBundle,
  inTotoStatement,
  signSimpleSigning,
  simpleSigningPayload,
  type Signer,
} from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const NOW = new Date('2030-06-01T00:00:00Z');
const EXPIRED = { notBefore: new Date('2021-01-01T00:00:00Z'), notAfter: new Date('2021-02-01T00:00:00Z') };
const IN_WINDOW = new Date('2021-01-15T00:00:00Z');

let dir = '';
let root: OpensslCa;
let issuing: OpensslCa;
let other: OpensslCa;
let rekor: SigstoreInstance;
const leaves: Record<string, IssuedCertificate> = {};
let issuingNotCa: OpensslCa;
let pathLenZero: OpensslCa;
let belowPathLen: OpensslCa;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pullgate-pki-'));
  root = await OpensslCa.root(dir, 'corp-root');
  issuing = await root.intermediate('corp-issuing');
  other = await OpensslCa.root(dir, 'other-root');
  issuingNotCa = await root.intermediate('not-a-ca', { ca: false, keyUsage: 'digitalSignature,keyCertSign' });
  pathLenZero = await root.intermediate('pathlen-zero', { pathLen: 0 });
  belowPathLen = await pathLenZero.intermediate('below-pathlen-zero');
  const names = {
    commonName: 'Release Signing',
    subjectAltName: 'email:ci@corp.test,URI:spiffe://corp.test/ci/release,DNS:build.corp.test',
  };
  leaves.good = await issuing.leaf('good', names);
  leaves.expired = await issuing.leaf('expired', { ...names, ...EXPIRED });
  leaves.serverAuth = await issuing.leaf('server-auth', { ...names, extendedKeyUsage: 'serverAuth' });
  leaves.noEku = await issuing.leaf('no-eku', { ...names, extendedKeyUsage: 'none' });
  leaves.encipherOnly = await issuing.leaf('key-agreement', { ...names, keyUsage: 'keyAgreement' });
  leaves.unknownCritical = await issuing.leaf('unknown-critical', {
    ...names,
    extra: ['1.2.3.4.5=critical,ASN1:NULL'],
  });
  leaves.rsaPss = await issuing.leaf('rsa-pss', { ...names, keyType: 'rsa-pss' });
  leaves.foreign = await other.leaf('foreign', names);
  leaves.underNotCa = await issuingNotCa.leaf('under-not-a-ca', names);
  leaves.underPathLen = await belowPathLen.leaf('under-pathlen', names);
  rekor = await SigstoreInstance.create();
  await writeFile(path.join(dir, 'rekor.pub'), rekor.rekorKey.publicKey.export({ type: 'spki', format: 'pem' }));
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const SIGNERS: PkiSignerSpec[] = [{ email: 'ci@corp.test' }];

function corp(spec: Partial<AttestorSpec['pki']> & { requireTlog?: boolean; trustRoot?: string } = {}) {
  // requireTlog: undefined (given) leaves it at its default; absent means false.
  const { requireTlog: given, trustRoot, ...pki } = spec;
  const requireTlog = 'requireTlog' in spec ? given : false;
  return compileAttestor(
    'corp',
    {
      pki: { caCertificates: [{ file: root.cert.certFile }], signers: SIGNERS, ...pki },
      ...(requireTlog === undefined ? {} : { requireTlog }),
      ...(trustRoot ? { trustRoot } : {}),
    },
    { baseDir: dir, trustRoots: { 'corp-rekor': { rekorKeys: [{ file: 'rekor.pub' }] } } },
  );
}

type Chain = 'intermediate' | 'intermediate+root' | 'none';

function pkiSigner(leaf: IssuedCertificate, chain: Chain = 'intermediate', via = issuing): Signer {
  const chainPem =
    chain === 'none' ? undefined : chain === 'intermediate' ? via.cert.pem : `${via.cert.pem}${root.cert.pem}`;
  return { kind: 'pki', privateKey: leaf.privateKey, certificatePem: leaf.pem, ...(chainPem ? { chainPem } : {}) };
}

async function judge(
  signer: Signer,
  attestor: ReturnType<typeof compileAttestor>,
  opts: { tlogAt?: Date; form?: 'sig' | 'bundle' } = {},
) {
  const source = new MemorySource();
  const digest = source.putManifest(
    'app',
    { schemaVersion: 2, config: {}, layers: [], annotations: { n: String(Math.random()) } },
    'v1',
  );
  const tlog = opts.tlogAt ? { tlog: { instance: rekor, at: opts.tlogAt } } : {};
  if (opts.form === 'bundle') {
    const bytes = dsseBundle(inTotoStatement(digest, 'https://sigstore.dev/cosign/sign/v1', {}), signer, tlog);
    source.putArtifact('app', [{ mediaType: MediaType.sigstoreBundleV03, bytes }], {
      subject: digest,
      artifactType: MediaType.sigstoreBundleV03,
    });
  } else {
    source.putArtifact(
      'app',
      [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(simpleSigningPayload(digest), signer, tlog) }],
      { tag: `${digestTag(digest)}.sig` },
    );
  }
  return (
    await verifyImage(source, { registry: 'registry.test', repository: 'app', digest }, [attestor], { now: NOW })
  ).get('corp')!;
}

const table: {
  name: string;
  leaf: string;
  chain?: Chain;
  via?: () => OpensslCa;
  attestor?: () => ReturnType<typeof compileAttestor>;
  tlogAt?: Date;
  form?: 'sig' | 'bundle';
  reason?: RegExp;
}[] = [
  { name: 'leaf with the intermediate in the chain annotation, no log, requireTlog: false', leaf: 'good' },
  { name: 'intermediate and root in the chain annotation', leaf: 'good', chain: 'intermediate+root' },
  { name: 'as a Sigstore bundle referrer with the intermediate in its chain', leaf: 'good', form: 'bundle' },
  {
    name: 'no intermediate carried, but configured as intermediateCertificates',
    leaf: 'good',
    chain: 'none',
    attestor: () => corp({ intermediateCertificates: [{ file: issuing.cert.certFile }] }),
  },
  {
    name: 'no intermediate anywhere',
    leaf: 'good',
    chain: 'none',
    reason: /certificate chain: no path to a trusted CA certificate of attestor "corp"/,
  },
  {
    name: 'a certificate of another root',
    leaf: 'foreign',
    via: () => other,
    reason: /no path to a trusted CA certificate/,
  },
  {
    name: 'requireTlog left at its default (true) and no log entry',
    leaf: 'good',
    attestor: () => corp({ requireTlog: undefined }),
    reason: /no transparency-log entry, but attestor "corp" \(requireTlog\) requires one/,
  },
  {
    name: 'an expired certificate and no log entry: judged at the time of the decision',
    leaf: 'expired',
    reason:
      /signer certificate ".*CN=Release Signing" is valid from 2021-01-01T00:00:00.000Z to 2021-02-01T00:00:00.000Z, not at 2030-06-01T00:00:00.000Z \(the time of the decision: no log entry or timestamp proves when it was signed\)/,
  },
  {
    name: 'an expired certificate logged in Rekor while it was valid',
    leaf: 'expired',
    tlogAt: IN_WINDOW,
    attestor: () => corp({ requireTlog: true, trustRoot: 'corp-rekor' }),
  },
  {
    name: 'an expired certificate logged after it expired',
    leaf: 'expired',
    tlogAt: new Date('2022-01-01T00:00:00Z'),
    attestor: () => corp({ requireTlog: true, trustRoot: 'corp-rekor' }),
    reason: /not at 2022-01-01T00:00:00.000Z \(the signing time a log or timestamp proves\)/,
  },
  {
    name: 'a log entry signed by a log the trust root does not know',
    leaf: 'good',
    tlogAt: IN_WINDOW,
    attestor: () => corp({ requireTlog: true }),
    reason: /against trust root builtin sigstore-public-good: .*(inclusion promise|no matching|SET)/i,
  },
  {
    name: 'a certificate for TLS servers only (EKU serverAuth)',
    leaf: 'serverAuth',
    reason: /has an extended key usage without code signing/,
  },
  { name: 'no extended key usage (any, as in Go)', leaf: 'noEku' },
  { name: 'a key usage without digitalSignature', leaf: 'encipherOnly', reason: /has no digitalSignature key usage/ },
  {
    name: 'an unknown critical extension',
    leaf: 'unknownCritical',
    reason: /critical extension 1\.2\.3\.4\.5 that is not supported/,
  },
  { name: 'an id-RSASSA-PSS signing key', leaf: 'rsaPss' },
  {
    name: 'an intermediate without CA:TRUE',
    leaf: 'underNotCa',
    via: () => issuingNotCa,
    reason: /intermediate certificate .*not-a-ca" is not a CA|no path/,
  },
  {
    name: 'an intermediate below a CA with pathlen 0',
    leaf: 'underPathLen',
    via: () => belowPathLen,
    chain: 'intermediate',
    attestor: () => corp({ intermediateCertificates: [{ file: pathLenZero.cert.certFile }] }),
    reason: /allows 0 intermediates below it, the path has 1/,
  },
];

for (const row of table) {
  test(`PKI: ${row.name} → ${row.reason ? 'rejected' : 'verifies'}`, async (t) => {
    const signer = pkiSigner(leaves[row.leaf]!, row.chain ?? 'intermediate', row.via?.() ?? issuing);
    const facts = await judge(signer, (row.attestor ?? (() => corp()))(), row);
    if (row.reason) {
      t.deepEqual(facts.verified, []);
      t.regex(facts.rejected[0] ?? '', row.reason);
    } else {
      t.deepEqual(facts.rejected, []);
      t.regex(
        facts.verified[0]?.signer ?? '',
        /^certificate ".*CN=Release Signing" issued under "O=pullgate-test, CN=corp-root"$/,
      );
    }
  });
}

const signerTable: { spec: PkiSignerSpec; ok: boolean }[] = [
  { spec: { email: 'ci@corp.test' }, ok: true },
  { spec: { email: 'other@corp.test' }, ok: false },
  { spec: { emailRegExp: '.*@corp\\.test' }, ok: true },
  { spec: { emailRegExp: 'ci@corp' }, ok: false },
  { spec: { uri: 'spiffe://corp.test/ci/release' }, ok: true },
  { spec: { uriRegExp: 'spiffe://corp\\.test/ci/.*' }, ok: true },
  { spec: { uriRegExp: 'spiffe://corp\\.test' }, ok: false },
  { spec: { dnsName: 'build.corp.test' }, ok: true },
  { spec: { dnsNameRegExp: '.*\\.evil\\.test' }, ok: false },
  { spec: { commonName: 'Release Signing' }, ok: true },
  { spec: { commonNameRegExp: 'Release' }, ok: false },
  { spec: { commonName: 'Release Signing', email: 'ci@corp.test' }, ok: true },
  { spec: { commonName: 'Release Signing', email: 'other@corp.test' }, ok: false },
];

for (const row of signerTable) {
  test(`PKI signer ${JSON.stringify(row.spec)} → ${row.ok ? 'matches' : 'does not match'}`, async (t) => {
    const facts = await judge(pkiSigner(leaves.good!), corp({ signers: [row.spec] }));
    t.is(facts.verified.length, row.ok ? 1 : 0, facts.rejected.join('; '));
    if (!row.ok)
      t.regex(
        facts.rejected[0] ?? '',
        /certificate \(email ci@corp\.test, uri spiffe:\/\/corp\.test\/ci\/release, dnsName build\.corp\.test, commonName Release Signing\) matches no signer of attestor "corp"/,
      );
  });
}

test('a PKI certificate does not satisfy an identities-only attestor, nor a Fulcio certificate a PKI attestor', async (t) => {
  const ids = compileAttestor(
    'corp',
    { identities: [{ issuer: 'https://x', subject: 'ci@corp.test' }], requireTlog: false },
    { baseDir: dir, trustRoots: {} },
  );
  const facts = await judge(pkiSigner(leaves.good!), ids);
  t.deepEqual(facts.verified, []);
  t.regex(
    facts.rejected[0] ?? '',
    /certificate chain: no path to a trusted CA certificate in trust root builtin sigstore-public-good/,
  );
  const fulcio = await rekor.issue({ email: 'ci@corp.test', issuer: 'https://x', notBefore: IN_WINDOW, notAfter: NOW });
  const viaFulcio = await judge({ kind: 'certificate', leaf: fulcio, instance: rekor }, corp());
  t.deepEqual(viaFulcio.verified, []);
  t.regex(viaFulcio.rejected[0] ?? '', /no path to a trusted CA certificate of attestor "corp"/);
});

test('pki configuration errors name the field', (t) => {
  const compile = (pki: unknown) => () =>
    compileAttestor('corp', { pki: pki as AttestorSpec['pki'], requireTlog: false }, { baseDir: dir, trustRoots: {} });
  const cases: [unknown, (string | number)[], RegExp][] = [
    [
      { caCertificates: [{ file: 'missing.pem' }], signers: SIGNERS },
      ['caCertificates', 0],
      /file missing.pem: cannot read \(ENOENT/,
    ],
    [
      { caCertificates: [{ file: 'rekor.pub' }], signers: SIGNERS },
      ['caCertificates', 0],
      /holds a PEM block of type PUBLIC KEY, not CERTIFICATE/,
    ],
    [{ caCertificates: [{ pem: '' }], signers: SIGNERS }, ['caCertificates', 0], /holds no PEM certificate/],
    [
      { caCertificates: [{ file: leaves.good!.certFile }], signers: SIGNERS },
      ['caCertificates', 0],
      /is not a CA certificate/,
    ],
    [
      { caCertificates: [{ file: root.cert.certFile }], signers: [{}] },
      ['signers', 0],
      /name the signer by email, uri, dnsName or commonName/,
    ],
    [
      { caCertificates: [{ file: root.cert.certFile }], signers: [{ email: 'a', emailRegExp: 'a' }] },
      ['signers', 0, 'emailRegExp'],
      /either email or emailRegExp/,
    ],
    [
      { caCertificates: [{ file: root.cert.certFile }], signers: [{ uriRegExp: '(' }] },
      ['signers', 0, 'uriRegExp'],
      /invalid regular expression/,
    ],
  ];
  for (const [pki, at, message] of cases) {
    const err = t.throws(compile(pki), { instanceOf: AttestorConfigError });
    t.deepEqual(err?.path, ['attestors', 'corp', 'pki', ...at]);
    t.regex(err?.message ?? '', message);
  }
});

// Certificate validity at the time an RFC 3161 timestamp proves (cosign's
// dev.sigstore.cosign/rfc3161timestamp annotation, cosign sign --timestamp-server-url), from a TSA
// made with openssl and trusted through a trusted_root.json's timestampAuthorities.
test('PKI at a TSA time: a certificate valid when timestamped verifies at a later decision; without a trusted timestamp it does not', async (t) => {
  const pki = await makeNotationPki(await mkdtemp(path.join(dir, 'tsa-')));
  const tsaRoot = path.join(dir, 'tsa_trusted_root.json');
  await writeFile(
    tsaRoot,
    JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [],
      certificateAuthorities: [],
      ctlogs: [],
      timestampAuthorities: [
        {
          subject: { organization: 'Pullgate Test', commonName: 'Pullgate Test TSA' },
          certChain: { certificates: [pki.tsa.der, pki.tsaRoot.der].map((d) => ({ rawBytes: d.toString('base64') })) },
          validFor: { start: '2000-01-01T00:00:00Z' },
        },
      ],
    }),
  );
  // Valid now (when the TSA stamps it), long expired at the decision (NOW, 2030).
  const now = Date.now();
  const current = await issuing.leaf('valid-now', {
    commonName: 'Release Signing',
    subjectAltName: 'email:ci@corp.test',
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86400_000),
  });
  const signer = pkiSigner(current);
  const attestor = (trustRoot?: string) =>
    compileAttestor(
      'corp',
      {
        pki: { caCertificates: [{ file: root.cert.certFile }], signers: SIGNERS },
        requireTlog: false,
        ...(trustRoot ? { trustRoot } : {}),
      },
      { baseDir: dir, trustRoots: { 'corp-tsa': { file: tsaRoot } } },
    );
  const judgeStamped = async (a: ReturnType<typeof compileAttestor>, stamp: boolean) => {
    const source = new MemorySource();
    const digest = source.putManifest(
      'app',
      { schemaVersion: 2, config: {}, layers: [], annotations: { n: String(Math.random()) } },
      'v1',
    );
    const layer = signSimpleSigning(simpleSigningPayload(digest), signer);
    const signature = Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64');
    const token = stamp
      ? await timestampToken(pki, signature, `stamp-${Math.random().toString(36).slice(2)}`, { response: true })
      : undefined;
    const annotations = token
      ? {
          ...layer.annotations,
          'dev.sigstore.cosign/rfc3161timestamp': JSON.stringify({
            SignedRFC3161TimestampBytes: token.toString('base64'),
          }),
        }
      : layer.annotations;
    source.putArtifact('app', [{ mediaType: MediaType.cosignSimpleSigning, bytes: layer.bytes, annotations }], {
      tag: `${digestTag(digest)}.sig`,
    });
    return (await verifyImage(source, { registry: 'registry.test', repository: 'app', digest }, [a], { now: NOW })).get(
      'corp',
    )!;
  };

  const stamped = await judgeStamped(attestor('corp-tsa'), true);
  t.deepEqual(stamped.rejected, []);
  t.regex(stamped.verified[0]?.signer ?? '', /CN=Release Signing/);

  const unstamped = await judgeStamped(attestor('corp-tsa'), false);
  t.deepEqual(unstamped.verified, []);
  t.regex(unstamped.rejected[0] ?? '', /not at 2030-06-01T00:00:00\.000Z \(the time of the decision/);

  // The same timestamp from a TSA the attestor's trust root does not list proves nothing.
  const untrusted = await judgeStamped(attestor(), true);
  t.deepEqual(untrusted.verified, []);
  t.regex(
    untrusted.rejected[0] ?? '',
    /against trust root builtin sigstore-public-good: timestamp could not be verified$/,
  );
});
