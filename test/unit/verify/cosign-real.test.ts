// Real signatures made by the cosign tool (containers/image test data), verified offline.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compileAttestor, type CompiledAttestor } from '../../../src/verify/attestor.ts';
import { publicGoodTrustedRootBytes } from '../../../src/verify/trust-root.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import type { IdentitySpec, TrustRootSpec } from '../../../src/policy/types.ts';
import { sharedFixtures } from '../../shared-fixtures.ts';
import { COSIGN_REAL, fixturePath, loadCosignFixture } from './fixtures.ts';

const KEYED = 'dir-img-cosign-valid';
const KEYLESS = 'dir-img-cosign-fulcio-rekor-valid';
const GITHUB = 'https://github.com/login/oauth';
const fixtures = sharedFixtures(test, [
  ...[KEYED, KEYLESS].flatMap((d) => [`cosign-real/${d}/manifest.json`, `cosign-real/${d}/signature.json`]),
  'cosign-real/fulcio_v1.crt.pem',
  'cosign-real/cosign.pub',
  'cosign-real/cosign2.pub',
]);

let dir = '';
fixtures.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pullgate-cosign-real-'));
  // A trust root naming exactly the fixture's Fulcio CA (root fulcio_v1.crt.pem and the
  // intermediate cosign shipped in the chain annotation) and the public-good Rekor key.
  const publicGood = JSON.parse(publicGoodTrustedRootBytes().toString('utf8')) as {
    tlogs: unknown[];
    ctlogs: unknown[];
  };
  const { annotations } = loadCosignFixture(KEYLESS);
  const intermediate = pemBodies(annotations['dev.sigstore.cosign/chain'] ?? '')[0];
  const root = pemBodies(readFileSync(new URL('fulcio_v1.crt.pem', COSIGN_REAL), 'utf8'))[0];
  const ca = {
    subject: { organization: 'sigstore.dev', commonName: 'sigstore' },
    uri: 'https://fulcio.sigstore.dev',
    certChain: { certificates: [{ rawBytes: intermediate }, { rawBytes: root }] },
    validFor: { start: '2021-10-07T00:00:00Z' },
  };
  const trustedRoot = (tlogs: unknown[]) =>
    JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs,
      certificateAuthorities: [ca],
      ctlogs: publicGood.ctlogs,
      timestampAuthorities: [],
    });
  await writeFile(path.join(dir, 'fixture-ca.json'), trustedRoot(publicGood.tlogs));
  await writeFile(path.join(dir, 'no-rekor.json'), trustedRoot([]));
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function pemBodies(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)].map((m) =>
    (m[1] ?? '').replace(/\s+/g, ''),
  );
}

const trustRoots = (): Record<string, TrustRootSpec> => ({
  'fixture-ca': { file: path.join(dir, 'fixture-ca.json') },
  'no-rekor': { file: path.join(dir, 'no-rekor.json') },
});

function keyed(name: string, file: string): CompiledAttestor {
  return compileAttestor(name, { keys: [{ file }] }, { baseDir: fixturePath('', COSIGN_REAL), trustRoots: {} });
}

function keyless(name: string, identity: IdentitySpec, trustRoot?: string): CompiledAttestor {
  return compileAttestor(
    name,
    { identities: [identity], ...(trustRoot ? { trustRoot } : {}) },
    { baseDir: dir, trustRoots: trustRoots() },
  );
}

fixtures.test('a cosign --key signature verifies with cosign.pub and not with cosign2.pub', async (t) => {
  const { source, image } = loadCosignFixture(KEYED);
  const facts = await verifyImage(source, image, [keyed('good', 'cosign.pub'), keyed('other', 'cosign2.pub')]);
  const good = facts.get('good');
  t.is(good?.verified.length, 1);
  t.like(good?.verified[0], { attestor: 'good', kind: 'signature' });
  t.regex(good?.verified[0]?.signer ?? '', /^key sha256:[0-9a-f]{64}$/);
  t.regex(good?.verified[0]?.source ?? '', /^tag sha256-[0-9a-f]{12}….sig layer 0$/);
  const other = facts.get('other');
  t.deepEqual(other?.verified, []);
  t.is(other?.examined, 1);
  t.regex(other?.rejected[0] ?? '', /signature does not verify with any key of attestor "other"/);
});

fixtures.test('a valid signature over a payload naming another digest is rejected, naming both digests', async (t) => {
  const { source, image } = loadCosignFixture(KEYED);
  // Serve the same .sig under another image: the signature still verifies, the payload does not fit.
  const other = source.putManifest(image.repository, Buffer.from('{"schemaVersion":2,"other":true}'));
  const sig = source.manifests.get(`${image.repository}:${image.digest.replace(':', '-')}.sig`);
  source.manifests.set(`${image.repository}:${other.replace(':', '-')}.sig`, sig!);
  const facts = await verifyImage(source, { ...image, digest: other }, [keyed('good', 'cosign.pub')]);
  t.deepEqual(facts.get('good')?.verified, []);
  t.true(facts.get('good')?.rejected[0]?.includes(`payload names ${image.digest}, not the served ${other}`));
});

fixtures.test(
  'a keyless cosign signature (Fulcio certificate + Rekor SET) verifies offline at the Rekor integrated time',
  async (t) => {
    const { source, image } = loadCosignFixture(KEYLESS);
    const identity = { issuer: GITHUB, subject: 'mitr@redhat.com' };
    const facts = await verifyImage(source, image, [
      keyless('builtin', identity),
      keyless('fixture-ca', identity, 'fixture-ca'),
      keyless(
        'regexp',
        { issuerRegExp: 'https://github\\.com/login/.*', subjectRegExp: '.*@redhat\\.com' },
        'fixture-ca',
      ),
    ]);
    for (const name of ['builtin', 'fixture-ca', 'regexp']) {
      t.deepEqual(facts.get(name)?.rejected, [], name);
      t.like(facts.get(name)?.verified[0], { attestor: name, kind: 'signature', signer: `${GITHUB} mitr@redhat.com` });
    }
  },
);

fixtures.test(
  'a keyless cosign signature is rejected for another subject, another issuer, a substring pattern, or without the Rekor key',
  async (t) => {
    const { source, image } = loadCosignFixture(KEYLESS);
    const facts = await verifyImage(source, image, [
      keyless('subject', { issuer: GITHUB, subject: 'someone@redhat.com' }),
      keyless('issuer', { issuer: 'https://accounts.google.com', subject: 'mitr@redhat.com' }),
      keyless('substring', { issuer: GITHUB, subjectRegExp: 'mitr@redhat' }),
      keyless('no-rekor', { issuer: GITHUB, subject: 'mitr@redhat.com' }, 'no-rekor'),
    ]);
    for (const name of ['subject', 'issuer', 'substring']) {
      t.deepEqual(facts.get(name)?.verified, [], name);
      t.regex(
        facts.get(name)?.rejected[0] ?? '',
        new RegExp(`subject mitr@redhat.com\\) matches no identity of attestor "${name}"`),
        name,
      );
    }
    t.deepEqual(facts.get('no-rekor')?.verified, []);
    t.regex(facts.get('no-rekor')?.rejected[0] ?? '', /inclusion promise could not be verified/);
  },
);

fixtures.test(
  'a keyless signature does not satisfy a keys-only attestor, nor a keyed one an identities-only attestor',
  async (t) => {
    const kl = loadCosignFixture(KEYLESS);
    const k = loadCosignFixture(KEYED);
    const a = await verifyImage(kl.source, kl.image, [keyed('keys', 'cosign.pub')]);
    t.regex(
      a.get('keys')?.rejected[0] ?? '',
      /signed with a certificate \(keyless\), but attestor "keys" lists no identities/,
    );
    const b = await verifyImage(k.source, k.image, [keyless('ids', { issuer: GITHUB, subject: 'mitr@redhat.com' })]);
    t.regex(b.get('ids')?.rejected[0] ?? '', /signed with a key, but attestor "ids" lists no keys/);
  },
);

fixtures.test('an image without any evidence yields no verified evidence and nothing examined', async (t) => {
  const { source, image } = loadCosignFixture(KEYED);
  const unsigned = source.putManifest(image.repository, Buffer.from('{"schemaVersion":2,"unsigned":true}'));
  const facts = await verifyImage(source, { ...image, digest: unsigned }, [keyed('good', 'cosign.pub')]);
  t.deepEqual(facts.get('good'), { attestor: 'good', verified: [], rejected: [], examined: 0 });
});
