// RSA-PSS keys (GCP Binary Authorization's PKIX attestors, KMS RSA_SIGN_PSS_* keys): an
// id-RSASSA-PSS key, or a plain RSA key named with signatureAlgorithm; one key, one scheme.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MediaType } from '../../../src/oci/types.ts';
import type { KeySpec } from '../../../src/policy/types.ts';
import { AttestorConfigError, compileAttestor } from '../../../src/verify/attestor.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { simpleSigningPayload } from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const noRoots = { baseDir: os.tmpdir(), trustRoots: {} };
const pem = (k: KeyObject): string => k.export({ type: 'spki', format: 'pem' }).toString();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pss = (hash: string, key: KeyObject, data: Buffer, saltLength = constants.RSA_PSS_SALTLEN_DIGEST): Buffer =>
  sign(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });

/** Verifies one simple-signing signature made by `signWith` against an attestor holding `key`. */
async function judge(
  key: KeySpec,
  signWith: (payload: Buffer) => Buffer | Promise<Buffer>,
): Promise<{ ok: boolean; reason?: string }> {
  const source = new MemorySource();
  const digest = source.putManifest('app', { schemaVersion: 2, layers: [], config: {} }, 'v1');
  const payload = simpleSigningPayload(digest);
  const signature = await signWith(payload);
  source.putArtifact(
    'app',
    [
      {
        mediaType: MediaType.cosignSimpleSigning,
        bytes: payload,
        annotations: { 'dev.cosignproject.cosign/signature': signature.toString('base64') },
      },
    ],
    { tag: `${digestTag(digest)}.sig` },
  );
  const facts = (
    await verifyImage(source, { registry: 'r', repository: 'app', digest }, [
      compileAttestor('a', { keys: [key] }, noRoots),
    ])
  ).get('a');
  return facts?.verified.length === 1 ? { ok: true } : { ok: false, reason: facts?.rejected[0] };
}

const rsaPem = pem(rsa.publicKey);
const table: { name: string; key: KeySpec; signWith: (p: Buffer) => Buffer; ok: boolean }[] = [
  {
    name: 'plain RSA key, PKCS#1 v1.5 SHA-256 (cosign)',
    key: { pem: rsaPem },
    signWith: (p) => sign('sha256', p, rsa.privateKey),
    ok: true,
  },
  {
    name: 'plain RSA key without signatureAlgorithm, PSS signature',
    key: { pem: rsaPem },
    signWith: (p) => pss('sha256', rsa.privateKey, p),
    ok: false,
  },
  {
    name: 'rsa-pss-sha256, PSS SHA-256 (salt = hash length, as Go signs)',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pss-sha256' },
    signWith: (p) => pss('sha256', rsa.privateKey, p),
    ok: true,
  },
  {
    name: 'rsa-pss-sha256, PSS SHA-256 with the maximum salt (OpenSSL default)',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pss-sha256' },
    signWith: (p) => pss('sha256', rsa.privateKey, p, constants.RSA_PSS_SALTLEN_MAX_SIGN),
    ok: true,
  },
  {
    name: 'rsa-pss-sha256, a PKCS#1 v1.5 signature',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pss-sha256' },
    signWith: (p) => sign('sha256', p, rsa.privateKey),
    ok: false,
  },
  {
    name: 'rsa-pss-sha256, a PSS SHA-512 signature',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pss-sha256' },
    signWith: (p) => pss('sha512', rsa.privateKey, p),
    ok: false,
  },
  {
    name: 'rsa-pss-sha512, PSS SHA-512 (KMS RSA_SIGN_PSS_4096_SHA512)',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pss-sha512' },
    signWith: (p) => pss('sha512', rsa.privateKey, p),
    ok: true,
  },
  {
    name: 'rsa-pkcs1v15-sha512, PKCS#1 v1.5 SHA-512',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pkcs1v15-sha512' },
    signWith: (p) => sign('sha512', p, rsa.privateKey),
    ok: true,
  },
  {
    name: 'rsa-pkcs1v15-sha512, PKCS#1 v1.5 SHA-256',
    key: { pem: rsaPem, signatureAlgorithm: 'rsa-pkcs1v15-sha512' },
    signWith: (p) => sign('sha256', p, rsa.privateKey),
    ok: false,
  },
];

for (const row of table) {
  test(`RSA: ${row.name} → ${row.ok ? 'verifies' : 'rejected'}`, async (t) => {
    const outcome = await judge(row.key, row.signWith);
    t.is(outcome.ok, row.ok, outcome.reason);
    if (!row.ok) t.regex(outcome.reason ?? '', /signature does not verify with any key of attestor "a"/);
  });
}

test('an id-RSASSA-PSS key and a PSS signature made by openssl verify; a signature by another key does not', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pullgate-pss-'));
  try {
    const openssl = (...args: string[]) =>
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    openssl(
      'genpkey',
      '-algorithm',
      'RSA-PSS',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-pkeyopt',
      'rsa_pss_keygen_md:sha256',
      '-pkeyopt',
      'rsa_pss_keygen_mgf1_md:sha256',
      '-out',
      'key.pem',
    );
    openssl('pkey', '-in', 'key.pem', '-pubout', '-out', 'pub.pem');
    const keyPem = await readFile(path.join(dir, 'pub.pem'), 'utf8');
    const key = compileAttestor('a', { keys: [{ pem: keyPem }] }, noRoots).keys[0];
    t.is(key?.algorithm, 'RSA-PSS-2048');
    const ok = await judge({ pem: keyPem }, async (payload) => {
      await writeFile(path.join(dir, 'payload.json'), payload);
      openssl(
        'dgst',
        '-sha256',
        '-sigopt',
        'rsa_padding_mode:pss',
        '-sign',
        'key.pem',
        '-out',
        'sig.bin',
        'payload.json',
      );
      return readFile(path.join(dir, 'sig.bin'));
    });
    t.true(ok.ok, ok.reason);
    const other = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const wrong = await judge({ pem: keyPem }, (p) => sign('sha256', p, other.privateKey));
    t.false(wrong.ok);
    t.throws(
      () => compileAttestor('a', { keys: [{ pem: keyPem, signatureAlgorithm: 'rsa-pkcs1v15-sha256' }] }, noRoots),
      {
        instanceOf: AttestorConfigError,
        message: /contradicts the key, an RSA-PSS \(id-RSASSA-PSS\) key/,
      },
    );
    t.throws(() => compileAttestor('a', { keys: [{ pem: keyPem, signatureAlgorithm: 'rsa-pss-sha512' }] }, noRoots), {
      instanceOf: AttestorConfigError,
      message: /contradicts the key's parameters, which fix sha256/,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('signatureAlgorithm is for RSA keys only; the error names the key and says to leave it out', (t) => {
  const ec = pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  const err = t.throws(
    () => compileAttestor('a', { keys: [{ pem: ec, signatureAlgorithm: 'rsa-pss-sha256' }] }, noRoots),
    {
      instanceOf: AttestorConfigError,
    },
  );
  t.is(
    err?.message,
    'attestor "a": keys[0]: pem: signatureAlgorithm rsa-pss-sha256 needs an RSA key, but this is ECDSA P-256; leave it out for this key type',
  );
  t.deepEqual(err?.path, ['attestors', 'a', 'keys', 0, 'pem']);
});
