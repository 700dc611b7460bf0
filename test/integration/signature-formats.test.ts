// Issue 12 through the proxy with real registries: signatures kept in a repository on another
// allowlisted registry (cosign's COSIGN_REPOSITORY), an unlisted signatures registry refused
// without contact, and the real keyless cosign fixture judged with bare Rekor/Fulcio files and by
// a PKI attestor over the Fulcio root.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  generateKey,
  pushImage,
  pushReferrer,
  signImage,
  skopeoCopy,
  startRegistry,
  type Registry,
} from '../harness/index.ts';
import { messageBundle } from '../harness/sigstore/sign.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';
import { sharedFixtures } from '../shared-fixtures.ts';
import { loadCosignFixture } from './real-fixture.ts';

const REG = 'images.example.test';
const SIGS = 'signatures.example.test';
const work = mkdtempSync(join(tmpdir(), 'pullgate-sigformats-'));
const trusted = generateKey('ecdsa-p256');
const digests: Record<string, string> = {};
let images: Registry;
let signatures: Registry;
let proxy: TestProxy;

const KEYLESS = 'cosign-real/dir-img-cosign-fulcio-rekor-valid';
// Only the real keyless test needs the shared fixtures; the rest of this file runs without them.
const real = sharedFixtures(test, [
  'cosign-real/rekor.pub',
  'cosign-real/fulcio_v1.crt.pem',
  `${KEYLESS}/manifest.json`,
  `${KEYLESS}/signature.json`,
]);
const COSIGN_REAL = real.path('cosign-real');
const requireOne = (attestor: string) => ({ evaluationMode: 'requireAttestation', requireAttestors: [attestor] });

function policy(): string {
  const key = { keys: [{ file: join(work, 'trusted.pub') }] };
  return stringify({
    apiVersion: 'pullgate.dev/v1',
    kind: 'Policy',
    trustRoots: real.present
      ? {
          'bare-files': {
            rekorKeys: [{ file: join(COSIGN_REAL, 'rekor.pub') }],
            fulcioCertificates: [{ file: join(COSIGN_REAL, 'fulcio_v1.crt.pem') }],
          },
          rekor: { rekorKeys: [{ file: join(COSIGN_REAL, 'rekor.pub') }] },
        }
      : {},
    attestors: {
      elsewhere: { ...key, signaturesRepository: `${SIGS}/acme/signatures` },
      beside: { ...key, signaturesRepository: `${SIGS}/acme/signatures`, alsoImageRepository: true },
      unlisted: { ...key, signaturesRepository: 'unlisted.example.test/acme/signatures' },
      ...(real.present ? realAttestors() : {}),
    },
    defaultRule: { evaluationMode: 'alwaysDeny' },
    rules: [
      { match: `${REG}/app/elsewhere`, ...requireOne('elsewhere') },
      { match: `${REG}/app/own-only`, ...requireOne('elsewhere') },
      { match: `${REG}/app/bundle-elsewhere`, ...requireOne('elsewhere') },
      { match: `${REG}/app/own-beside`, ...requireOne('beside') },
      { match: `${REG}/app/unlisted`, ...requireOne('unlisted') },
      ...(real.present
        ? [
            { match: `${REG}/real/keyless-bare`, ...requireOne('mitr-bare') },
            { match: `${REG}/real/keyless-pki`, ...requireOne('mitr-pki') },
          ]
        : []),
    ],
  });
}

function realAttestors() {
  return {
    'mitr-bare': {
      trustRoot: 'bare-files',
      identities: [{ issuer: 'https://github.com/login/oauth', subject: 'mitr@redhat.com' }],
    },
    'mitr-pki': {
      trustRoot: 'rekor',
      pki: {
        caCertificates: [{ file: join(COSIGN_REAL, 'fulcio_v1.crt.pem') }],
        signers: [{ email: 'mitr@redhat.com' }],
      },
    },
  };
}

async function push(repo: string): Promise<string> {
  const image = await buildImage(join(work, repo), '1.0', { seed: repo });
  await pushImage(join(work, repo), '1.0', `${images.host}/${repo}:1.0`);
  digests[repo] = image.digest;
  return image.digest;
}

test.before(async () => {
  images = await startRegistry();
  signatures = await startRegistry();
  writeFileSync(join(work, 'trusted.pub'), trusted.publicPem);
  // Signed into the signatures registry only, as `COSIGN_REPOSITORY=… cosign sign` stores them.
  await signImage(signatures, 'acme/signatures', await push('app/elsewhere'), trusted.privateKey);
  await signImage(signatures, 'acme/signatures', await push('app/unlisted'), trusted.privateKey);
  // A Sigstore bundle as a referrer in the signatures registry; distribution 2.8 has no referrers
  // API, so it is found through the referrers tag schema there. The subject is copied beside it.
  const bundled = await push('app/bundle-elsewhere');
  await pushImage(join(work, 'app/bundle-elsewhere'), '1.0', `${signatures.host}/acme/signatures:bundle-subject`);
  const manifest = Buffer.from(
    await (
      await request(`${images.url}/v2/app/bundle-elsewhere/manifests/${bundled}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).body.arrayBuffer(),
  );
  await pushReferrer(signatures, 'acme/signatures', bundled, {
    artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    layerMediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    layerBytes: messageBundle(manifest, {
      kind: 'key',
      privateKey: trusted.privateKey,
      publicKeyPem: trusted.publicPem,
    }),
  });
  // Signed in the image's own repository only.
  for (const repo of ['app/own-only', 'app/own-beside'])
    await signImage(images, repo, await push(repo), trusted.privateKey);
  if (real.present)
    for (const repo of ['real/keyless-bare', 'real/keyless-pki'])
      digests[repo] = await loadCosignFixture(images, repo, '1', real.path(KEYLESS));
  proxy = await startTestProxy({
    policy: policy(),
    config: {
      upstreams: [
        { host: REG, url: images.url, insecure: true },
        { host: SIGS, url: signatures.url, insecure: true },
      ],
    },
  });
});

test.after.always(async () => {
  await proxy?.close();
  await images?.stop();
  await signatures?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function pull(repo: string, ref = '1.0') {
  const res = await request(`${proxy.url}/v2/${REG}/${repo}/manifests/${ref}`, {
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  const body = await res.body.text();
  return {
    status: res.statusCode,
    body,
    error: res.statusCode === 200 ? '' : String(JSON.parse(body).errors?.[0]?.message),
  };
}

test('signatures in a repository on another allowlisted registry admit the image; skopeo copies it', async (t) => {
  const r = await pull('app/elsewhere');
  t.is(r.status, 200, r.body);
  await skopeoCopy(`docker://${proxy.host}/${REG}/app/elsewhere:1.0`, `oci:${join(work, 'out-elsewhere')}:1.0`);
  const line = proxy.lines('decision').find((l) => String(l.image).includes('app/elsewhere'));
  t.is(line?.verdict, 'allow');
});

test('a bundle referrer in the signatures registry (referrers tag schema) admits the image', async (t) => {
  const r = await pull('app/bundle-elsewhere');
  t.is(r.status, 200, r.body);
});

test("the image's own signatures count only with alsoImageRepository", async (t) => {
  const own = await pull('app/own-only');
  t.is(own.status, 403, own.body);
  t.regex(own.error, /attestor "elsewhere"/);
  t.is((await pull('app/own-beside')).status, 200);
});

test('a signatures registry that is not allowlisted is never contacted; the deny names it and the fix', async (t) => {
  const r = await pull('app/unlisted');
  t.is(r.status, 403, r.body);
  t.regex(r.error, /registry unlisted\.example\.test is not allowlisted, so it is not contacted; add it to upstreams/);
});

real.test(
  'the real keyless cosign signature: admitted with bare rekor.pub + fulcio_v1.crt.pem, and by a PKI attestor over the Fulcio root',
  async (t) => {
    const bare = await pull('real/keyless-bare', '1');
    t.is(bare.status, 200, bare.body);
    const pki = await pull('real/keyless-pki', '1');
    t.is(pki.status, 200, pki.body);
  },
);
