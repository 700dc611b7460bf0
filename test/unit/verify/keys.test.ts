// Keyed simple signing with every supported key type, and attestor configuration errors.
import test from 'ava';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MediaType } from '../../../src/oci/types.ts';
import { AttestorConfigError, compileAttestor, trustRootDigest } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { signSimpleSigning, simpleSigningPayload, type Signer } from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

type KeyKind = 'P-256' | 'P-384' | 'RSA' | 'Ed25519';

function keyPair(kind: KeyKind): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (kind) {
    case 'P-256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'P-384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'RSA':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'Ed25519':
      return generateKeyPairSync('ed25519');
  }
}

const pem = (k: KeyObject): string => k.export({ type: 'spki', format: 'pem' }).toString();
const noRoots = { baseDir: os.tmpdir(), trustRoots: {} };

for (const kind of ['P-256', 'P-384', 'RSA', 'Ed25519'] as const) {
  test(`${kind}: a simple signing signature verifies with its key and not with another of the same kind`, async (t) => {
    const mine = keyPair(kind);
    const other = keyPair(kind);
    const source = new MemorySource();
    const digest = source.putManifest('app', { schemaVersion: 2, layers: [], config: {} }, 'v1');
    const signer: Signer = { kind: 'key', privateKey: mine.privateKey, publicKeyPem: pem(mine.publicKey) };
    source.putArtifact(
      'app',
      [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(simpleSigningPayload(digest), signer) }],
      { tag: `${digestTag(digest)}.sig` },
    );
    const facts = await verifyImage(source, { registry: 'r', repository: 'app', digest }, [
      compileAttestor('mine', { keys: [{ pem: pem(other.publicKey) }, { pem: pem(mine.publicKey) }] }, noRoots),
      compileAttestor('other', { keys: [{ pem: pem(other.publicKey) }] }, noRoots),
    ]);
    t.is(facts.get('mine')?.verified.length, 1);
    t.is(
      facts.get('mine')?.verified[0]?.signer,
      `key ${compileAttestor('x', { keys: [{ pem: pem(mine.publicKey) }] }, noRoots).keys[0]?.id}`,
    );
    t.deepEqual(facts.get('other')?.verified, []);
    t.regex(facts.get('other')?.rejected[0] ?? '', /signature does not verify with any key of attestor "other"/);
  });
}

test("P-384: a signature hashed with SHA-256 (cosign's legacy default digest) also verifies", async (t) => {
  const mine = keyPair('P-384');
  const source = new MemorySource();
  const digest = source.putManifest('app', { schemaVersion: 2, layers: [], config: {} }, 'v1');
  const payload = simpleSigningPayload(digest);
  const signature = sign('sha256', payload, mine.privateKey).toString('base64');
  source.putArtifact(
    'app',
    [
      {
        mediaType: MediaType.cosignSimpleSigning,
        bytes: payload,
        annotations: { 'dev.cosignproject.cosign/signature': signature },
      },
    ],
    { tag: `${digestTag(digest)}.sig` },
  );
  const facts = await verifyImage(source, { registry: 'r', repository: 'app', digest }, [
    compileAttestor('a', { keys: [{ pem: pem(mine.publicKey) }] }, noRoots),
  ]);
  t.is(facts.get('a')?.verified.length, 1);
});

test('a signature whose payload is not a cosign container image signature is rejected after verifying', async (t) => {
  const mine = keyPair('P-256');
  const source = new MemorySource();
  const digest = source.putManifest('app', { schemaVersion: 2, layers: [], config: {} }, 'v1');
  const payload = Buffer.from(
    JSON.stringify({ critical: { image: { 'docker-manifest-digest': digest }, type: 'something else' } }),
  );
  const signer: Signer = { kind: 'key', privateKey: mine.privateKey, publicKeyPem: pem(mine.publicKey) };
  source.putArtifact('app', [{ mediaType: MediaType.cosignSimpleSigning, ...signSimpleSigning(payload, signer) }], {
    tag: `${digestTag(digest)}.sig`,
  });
  const facts = await verifyImage(source, { registry: 'r', repository: 'app', digest }, [
    compileAttestor('a', { keys: [{ pem: pem(mine.publicKey) }] }, noRoots),
  ]);
  t.regex(
    facts.get('a')?.rejected[0] ?? '',
    /payload type is "something else", not "cosign container image signature"/,
  );
});

test('a .sig layer without a signature annotation is rejected with a reason', async (t) => {
  const mine = keyPair('P-256');
  const source = new MemorySource();
  const digest = source.putManifest('app', { schemaVersion: 2, layers: [], config: {} }, 'v1');
  source.putArtifact(
    'app',
    [{ mediaType: MediaType.cosignSimpleSigning, bytes: simpleSigningPayload(digest), annotations: {} }],
    { tag: `${digestTag(digest)}.sig` },
  );
  const facts = await verifyImage(source, { registry: 'r', repository: 'app', digest }, [
    compileAttestor('a', { keys: [{ pem: pem(mine.publicKey) }] }, noRoots),
  ]);
  t.deepEqual(facts.get('a')?.rejected, [
    `tag ${digestTag(digest).slice(0, 19)}….sig layer 0: no dev.cosignproject.cosign/signature annotation`,
  ]);
});

// ---- configuration ----------------------------------------------------------------------

let dir = '';
test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pullgate-keys-'));
  await writeFile(path.join(dir, 'not-a-key.pub'), 'hello\n');
  await writeFile(path.join(dir, 'ci.pub'), pem(keyPair('P-256').publicKey));
  await writeFile(
    path.join(dir, 'root.json'),
    '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}',
  );
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function configError(t: import('ava').ExecutionContext, fn: () => unknown): AttestorConfigError {
  const err = t.throws(fn, { instanceOf: AttestorConfigError });
  return err as AttestorConfigError;
}

test('a key file that is not a PEM public key is named with its path', (t) => {
  const err = configError(t, () =>
    compileAttestor('ci', { keys: [{ file: 'ci.pub' }, { file: 'not-a-key.pub' }] }, { baseDir: dir, trustRoots: {} }),
  );
  t.is(err.message, 'attestor "ci": keys[1]: file not-a-key.pub: not a PEM public key');
  t.deepEqual(err.path, ['attestors', 'ci', 'keys', 1, 'file']);
});

test('a missing key file, a key with both pem and file, and weak or unsupported keys are refused', (t) => {
  t.regex(
    configError(t, () => compileAttestor('ci', { keys: [{ file: 'missing.pub' }] }, { baseDir: dir, trustRoots: {} }))
      .message,
    /keys\[0\]: file missing.pub: cannot read \(ENOENT/,
  );
  t.deepEqual(
    configError(t, () =>
      compileAttestor('ci', { keys: [{ file: 'ci.pub', pem: 'x' }] }, { baseDir: dir, trustRoots: {} }),
    ).path,
    ['attestors', 'ci', 'keys', 0],
  );
  const weak = pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
  t.regex(
    configError(t, () => compileAttestor('ci', { keys: [{ pem: weak }] }, noRoots)).message,
    /keys\[0\]: pem: RSA key of 1024 bits is too short/,
  );
  const secp256k1 = pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey);
  t.regex(
    configError(t, () => compileAttestor('ci', { keys: [{ pem: secp256k1 }] }, noRoots)).message,
    /unsupported elliptic curve secp256k1/,
  );
});

test('identities need an issuer and a subject, and regular expressions must compile', (t) => {
  const noSubject = configError(t, () => compileAttestor('gh', { identities: [{ issuer: 'https://x' }] }, noRoots));
  t.is(noSubject.message, 'attestor "gh": identities[0].subject: subject or subjectRegExp is required');
  t.deepEqual(noSubject.path, ['attestors', 'gh', 'identities', 0, 'subject']);
  const bad = configError(t, () =>
    compileAttestor('gh', { identities: [{ issuer: 'https://x', subjectRegExp: '(' }] }, noRoots),
  );
  t.deepEqual(bad.path, ['attestors', 'gh', 'identities', 0, 'subjectRegExp']);
  t.regex(bad.message, /invalid regular expression/);
  t.regex(
    configError(t, () =>
      compileAttestor('gh', { identities: [{ issuer: 'a', issuerRegExp: 'a', subject: 's' }] }, noRoots),
    ).message,
    /either issuer or issuerRegExp/,
  );
});

test('an attestor needs keys or identities, and a known, readable trust root', (t) => {
  t.deepEqual(configError(t, () => compileAttestor('empty', {}, noRoots)).path, ['attestors', 'empty']);
  const unknown = configError(t, () =>
    compileAttestor('a', { keys: [{ file: 'ci.pub' }], trustRoot: 'corp' }, { baseDir: dir, trustRoots: {} }),
  );
  t.deepEqual(unknown.path, ['attestors', 'a', 'trustRoot']);
  t.regex(unknown.message, /unknown trust root "corp"; known: public-good/);
  const unreadable = configError(t, () =>
    compileAttestor(
      'a',
      { keys: [{ file: 'ci.pub' }], trustRoot: 'corp' },
      { baseDir: dir, trustRoots: { corp: { file: 'nope.json' } } },
    ),
  );
  t.deepEqual(unreadable.path, ['trustRoots', 'corp', 'file']);
  const notRoot = configError(t, () =>
    compileAttestor(
      'a',
      { keys: [{ file: 'ci.pub' }], trustRoot: 'corp' },
      { baseDir: dir, trustRoots: { corp: { file: 'ci.pub' } } },
    ),
  );
  t.regex(notRoot.message, /trust root "corp": file .*ci.pub: not JSON/);
});

test('anchored identity patterns never match a substring', (t) => {
  const a = compileAttestor(
    'gh',
    {
      identities: [
        {
          issuerRegExp: 'https://token\\.actions\\.githubusercontent\\.com',
          subjectRegExp: 'https://github\\.com/org/.*',
        },
      ],
    },
    noRoots,
  );
  const m = a.identities[0]!;
  t.true(
    m.matches(
      'https://token.actions.githubusercontent.com',
      'https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main',
    ),
  );
  t.false(m.matches('https://token.actions.githubusercontent.com', 'https://evil.example/https://github.com/org/x'));
  t.false(m.matches('https://token.actions.githubusercontent.com.evil', 'https://github.com/org/x'));
  t.false(m.matches(undefined, 'https://github.com/org/x'));
  // An alternation must not escape the anchors.
  const alt = compileAttestor('alt', { identities: [{ issuer: 'i', subjectRegExp: 'a|b' }] }, noRoots).identities[0]!;
  t.true(alt.matches('i', 'b'));
  t.false(alt.matches('i', 'ab'));
  t.false(alt.matches('i', 'xa'));
});

test('requireTlog defaults to false for keys and true for keyless identities, and an explicit value applies to both', (t) => {
  t.deepEqual(compileAttestor('a', { keys: [{ file: 'ci.pub' }] }, { baseDir: dir, trustRoots: {} }).requireTlog, {
    keyed: false,
    keyless: true,
  });
  t.deepEqual(
    compileAttestor('a', { keys: [{ file: 'ci.pub' }], requireTlog: true }, { baseDir: dir, trustRoots: {} })
      .requireTlog,
    { keyed: true, keyless: true },
  );
});

test('trustRootDigest is the sha256 of the root content and tells roots apart', (t) => {
  const builtin = trustRootDigest({ builtin: 'sigstore-public-good' }, dir);
  const file = trustRootDigest({ file: 'root.json' }, dir);
  t.regex(builtin, /^sha256:[0-9a-f]{64}$/);
  t.not(builtin, file);
  t.is(
    file,
    'sha256:' +
      createHash('sha256')
        .update(
          '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}',
        )
        .digest('hex'),
  );
});
