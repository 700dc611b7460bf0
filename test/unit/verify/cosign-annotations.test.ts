// The cosign annotation rules of cosign-layer.test.ts on signatures this test makes itself (a key,
// a test-made Sigstore instance, an openssl CA), so they run on a fresh clone without ../shared:
// Go's base64 (CR and LF skipped, nothing else) and the signer certificate taken from the
// certificate annotation alone, never from the chain.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MediaType } from '../../../src/oci/types.ts';
import { compileAttestor, type CompiledAttestor } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { generateKey } from '../../harness/cosign.ts';
import { OpensslCa } from '../../harness/pki.ts';
import { SigstoreInstance } from '../../harness/sigstore/instance.ts';
import { signSimpleSigning, simpleSigningPayload, type Signer } from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const SIG = 'dev.cosignproject.cosign/signature';
const CERT = 'dev.sigstore.cosign/certificate';
const CHAIN = 'dev.sigstore.cosign/chain';
const SET = 'dev.sigstore.cosign/bundle';
const ISSUER = 'https://oidc.test.invalid';
const EMAIL = 'dev@example.test';
const SIGNED_AT = new Date('2024-05-01T12:00:00Z');
const NOW = new Date('2025-01-01T00:00:00Z');

const key = generateKey('ecdsa-p256');
let dir = '';
let sigstore: SigstoreInstance;
let root: OpensslCa;
let issuing: OpensslCa;
let pkiSigner: Signer;
let keylessSigner: Signer;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pullgate-cosign-annotations-'));
  sigstore = await SigstoreInstance.create();
  await sigstore.writeTrustedRoot(dir, 'root.json');
  root = await OpensslCa.root(dir, 'corp-root');
  issuing = await root.intermediate('corp-issuing');
  const leaf = await issuing.leaf('signer', { commonName: 'Release Signing', subjectAltName: 'email:ci@corp.test' });
  pkiSigner = { kind: 'pki', privateKey: leaf.privateKey, certificatePem: leaf.pem, chainPem: issuing.cert.pem };
  keylessSigner = {
    kind: 'certificate',
    leaf: await sigstore.issue({
      email: EMAIL,
      issuer: ISSUER,
      notBefore: SIGNED_AT,
      notAfter: new Date(SIGNED_AT.getTime() + 600_000),
    }),
    instance: sigstore,
  };
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const wrap = (text: string, width: number, eol: string): string =>
  (text.match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join(eol) + eol;

const keyed = () => compileAttestor('a', { keys: [{ pem: key.publicPem }] }, { baseDir: dir, trustRoots: {} });
const keyless = () =>
  compileAttestor(
    'a',
    { identities: [{ issuer: ISSUER, subject: EMAIL }], trustRoot: 'test' },
    { baseDir: dir, trustRoots: { test: { file: 'root.json' } } },
  );
const pki = () =>
  compileAttestor(
    'a',
    {
      pki: { caCertificates: [{ file: root.cert.certFile }], signers: [{ email: 'ci@corp.test' }] },
      requireTlog: false,
    },
    { baseDir: dir, trustRoots: {} },
  );

/** A `.sig` signature of a new image by `signer`, its annotations edited, judged by `attestor`. */
async function judge(
  signer: Signer,
  attestor: CompiledAttestor,
  edit: (a: Record<string, string>) => Record<string, string>,
  tlog = false,
) {
  const source = new MemorySource();
  const digest = source.putManifest(
    'app',
    { schemaVersion: 2, config: {}, layers: [], annotations: { n: String(Math.random()) } },
    'v1',
  );
  const layer = signSimpleSigning(
    simpleSigningPayload(digest),
    signer,
    tlog ? { tlog: { instance: sigstore, at: SIGNED_AT } } : {},
  );
  source.putArtifact(
    'app',
    [{ mediaType: MediaType.cosignSimpleSigning, bytes: layer.bytes, annotations: edit(layer.annotations) }],
    { tag: `${digestTag(digest)}.sig` },
  );
  return (
    await verifyImage(source, { registry: 'registry.test', repository: 'app', digest }, [attestor], { now: NOW })
  ).get('a')!;
}

const base64Table: { name: string; edit: (sig: string) => string; ok: boolean }[] = [
  { name: 'as cosign stores it', edit: (s) => s, ok: true },
  { name: 'wrapped at 76 columns with LF', edit: (s) => wrap(s, 76, '\n'), ok: true },
  { name: 'wrapped at 64 columns with CRLF', edit: (s) => wrap(s, 64, '\r\n'), ok: true },
  { name: 'with a stray CR in the middle', edit: (s) => `${s.slice(0, 10)}\r${s.slice(10)}`, ok: true },
  { name: 'with a space', edit: (s) => `${s.slice(0, 10)} ${s.slice(10)}`, ok: false },
  { name: 'with a tab', edit: (s) => `${s.slice(0, 10)}\t${s.slice(10)}`, ok: false },
  { name: 'in the URL-safe alphabet', edit: (s) => s.replace(/\+/g, '-').replace(/\//g, '_'), ok: false },
  { name: 'without its padding', edit: (s) => `${s}A`.replace(/=+$/, ''), ok: false },
  { name: 'with data after the padding', edit: (s) => `${s}==AA`, ok: false },
];

for (const row of base64Table) {
  test(`self-made: a keyed signature annotation ${row.name} is ${row.ok ? 'read' : 'refused as not base64'}`, async (t) => {
    // ECDSA signatures differ each time: sign again until the edit changes this one (a signature
    // without "+" or "/" is the same in the URL-safe alphabet).
    let facts;
    for (let i = 0; i < 50; i++) {
      let original = '';
      facts = await judge({ kind: 'key', privateKey: key.privateKey, publicKeyPem: key.publicPem }, keyed(), (a) => {
        original = a[SIG] ?? '';
        return { ...a, [SIG]: row.edit(original) };
      });
      if (row.ok || row.edit(original) !== original) break;
    }
    if (row.ok) {
      t.deepEqual(facts!.rejected, []);
      t.is(facts!.verified.length, 1);
    } else {
      t.deepEqual(facts!.verified, []);
      t.regex(facts!.rejected[0] ?? '', /layer 0: dev\.cosignproject\.cosign\/signature is not base64$/);
    }
  });
}

test('self-made: a keyless signature whose signature, SET and Rekor body are wrapped still verifies at the log time', async (t) => {
  const facts = await judge(
    keylessSigner,
    keyless(),
    (a) => {
      const set = JSON.parse(a[SET] ?? '{}') as { SignedEntryTimestamp: string; Payload: { body: string } };
      set.SignedEntryTimestamp = wrap(set.SignedEntryTimestamp, 76, '\n');
      set.Payload.body = wrap(set.Payload.body, 76, '\r\n');
      return { ...a, [SIG]: wrap(a[SIG] ?? '', 76, '\n'), [SET]: JSON.stringify(set) };
    },
    true,
  );
  t.deepEqual(facts.rejected, []);
  t.is(facts.verified[0]?.signer, `${ISSUER} ${EMAIL}`);
});

test('self-made: the signer certificate comes from the certificate annotation alone, never from the chain', async (t) => {
  const cases: { name: string; edit: (a: Record<string, string>) => Record<string, string>; reason: RegExp }[] = [
    {
      name: 'certificate annotation without a certificate, chain holding the leaf',
      edit: (a) => ({ ...a, [CERT]: 'not a certificate', [CHAIN]: `${a[CERT]}${a[CHAIN]}` }),
      reason: /dev\.sigstore\.cosign\/certificate holds 0 PEM certificates; exactly one is expected/,
    },
    {
      name: 'two certificates in the certificate annotation',
      edit: (a) => ({ ...a, [CERT]: `${a[CERT]}${a[CHAIN]}` }),
      reason: /holds 2 PEM certificates; exactly one is expected/,
    },
    {
      name: 'a PEM block of another type',
      edit: (a) => ({ ...a, [CERT]: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }),
      reason: /holds a PEM block of type PUBLIC KEY, not CERTIFICATE/,
    },
    {
      name: 'a chain annotation without a certificate',
      edit: (a) => ({ ...a, [CHAIN]: 'garbage' }),
      reason: /dev\.sigstore\.cosign\/chain holds no PEM certificate/,
    },
  ];
  // As signed, both verify: each edit alone makes the difference.
  t.is((await judge(pkiSigner, pki(), (a) => a)).verified.length, 1);
  t.is((await judge(keylessSigner, keyless(), (a) => a, true)).verified.length, 1);
  for (const c of cases) {
    for (const [what, signer, attestor, tlog] of [
      ['pki', pkiSigner, pki, false],
      ['keyless', keylessSigner, keyless, true],
    ] as const) {
      const facts = await judge(signer, attestor(), c.edit, tlog);
      t.deepEqual(facts.verified, [], `${what}: ${c.name}`);
      t.regex(facts.rejected[0] ?? '', c.reason, `${what}: ${c.name}`);
    }
  }
});
