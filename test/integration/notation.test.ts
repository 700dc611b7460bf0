// Notation signatures pulled through the proxy from a real registry: the notation CLI's own e2e
// OCI layouts (legacy signature manifests found under the referrers tag fallback), and images
// these tests build and sign themselves (current artifactType form, a revoked signer, a wrong
// payload digest), with Notation and cosign attestors mixed in one N-of-M rule.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import {
  buildImage,
  pushImage,
  pushReferrer,
  putManifest,
  startRegistry,
  uploadBlob,
  type Registry,
} from '../harness/index.ts';
import { makeNotationPki, signJws, signCose, type NotationPki } from '../harness/notation.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';
import { sharedFixtures } from '../shared-fixtures.ts';

const REG = 'registry.example.test';
const E2E = [
  'jws-e2e-valid',
  'jws-e2e-wrong-truststore',
  'jws-e2e-expired-signature',
  'jws-e2e-not-an-envelope',
  'jws-e2e-expired-cert-no-timestamp',
];
// Only the e2e layouts come from the shared fixtures; the own-image tests run without them.
const real = sharedFixtures(
  test,
  E2E.map((f) => `notation-real/${f}`),
);
const NOTATION = real.path('notation-real');

let registry: Registry;
let proxy: TestProxy;
let pki: NotationPki;
const work = mkdtempSync(join(tmpdir(), 'pullgate-notation-it-'));

/** Pushes a notation e2e OCI layout: blobs, then the image (tag v1), its signature manifest(s) and the tag-schema index. */
async function pushLayout(folder: string, repo: string): Promise<void> {
  const dir = join(NOTATION, folder, 'oci-layout');
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
    manifests: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
  };
  const manifests = new Set(index.manifests.map((m) => m.digest.split(':')[1]));
  for (const hex of readdirSync(join(dir, 'blobs/sha256'))) {
    const bytes = readFileSync(join(dir, 'blobs/sha256', hex));
    try {
      const doc = JSON.parse(bytes.toString('utf8')) as {
        schemaVersion?: number;
        layers?: unknown;
        manifests?: unknown;
      };
      if (doc.schemaVersion === 2 && (doc.layers || doc.manifests)) manifests.add(hex);
      else await uploadBlob(registry, repo, bytes);
    } catch {
      await uploadBlob(registry, repo, bytes);
    }
  }
  const ordered = index.manifests.sort(
    (a, b) => (a.mediaType.includes('index') ? 1 : 0) - (b.mediaType.includes('index') ? 1 : 0),
  );
  for (const m of ordered) {
    const bytes = readFileSync(join(dir, 'blobs/sha256', m.digest.split(':')[1] as string));
    const ref = m.annotations?.['org.opencontainers.image.ref.name'] ?? m.digest;
    await putManifest(registry, repo, ref, bytes, m.mediaType);
  }
}

function attestor(folder: string, policy = 'trustpolicy.json') {
  return {
    notation: { trustStoreDir: join(NOTATION, folder, 'truststore'), trustPolicy: join(NOTATION, folder, policy) },
  };
}

async function pushSigned(
  repo: string,
  sign: (target: { mediaType: string; digest: string; size: number }) => Promise<{ bytes: Buffer; mediaType: string }>,
) {
  const image = await buildImage(join(work, repo), '1.0', { seed: repo });
  await pushImage(join(work, repo), '1.0', `${registry.host}/${repo}:1.0`);
  const head = await request(`${registry.url}/v2/${repo}/manifests/${image.digest}`, {
    method: 'HEAD',
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  await head.body.dump();
  const target = {
    mediaType: String(head.headers['content-type']),
    digest: image.digest,
    size: Number(head.headers['content-length']),
  };
  const envelope = await sign(target);
  await pushReferrer(registry, repo, image.digest, {
    artifactType: 'application/vnd.cncf.notary.signature',
    layerMediaType: envelope.mediaType,
    layerBytes: envelope.bytes,
  });
}

test.before(async () => {
  registry = await startRegistry();
  pki = await makeNotationPki(work);
  const layouts = real.present ? E2E : [];
  for (const folder of layouts) await pushLayout(folder, `notation/${folder}`);
  const chain = [pki.leaf.der, pki.intermediate.der, pki.root.der];
  const jws = (t: { mediaType: string; digest: string; size: number }) =>
    signJws({ target: t, key: pki.leaf.key, chain });
  await pushSigned('own/jws', async (t) => ({ bytes: await jws(t), mediaType: 'application/jose+json' }));
  await pushSigned('own/cose', async (t) => ({
    bytes: await signCose({
      target: t,
      key: pki.ecLeaf.key,
      alg: 'ES256',
      chain: [pki.ecLeaf.der, pki.intermediate.der, pki.root.der],
    }),
    mediaType: 'application/cose',
  }));
  await pushSigned('own/revoked', async (t) => ({
    bytes: await signJws({
      target: t,
      key: pki.revokedLeaf.key,
      chain: [pki.revokedLeaf.der, pki.intermediate.der, pki.root.der],
    }),
    mediaType: 'application/jose+json',
  }));
  await pushSigned('own/other-digest', async (t) => ({
    bytes: await jws({ ...t, digest: `sha256:${'0'.repeat(64)}` }),
    mediaType: 'application/jose+json',
  }));

  const own = {
    notation: {
      trustStoreFiles: { ca: { test: [pki.root.certFile] } },
      level: 'strict',
      trustStores: ['ca:test'],
      trustedIdentities: ['x509.subject: C=US, ST=WA, O=Pullgate Test'],
      crls: [pki.crlFile],
    },
  };
  const rules = [
    ...layouts.map((f) => ({
      match: `${REG}/notation/${f}`,
      evaluationMode: 'requireAttestation',
      requireAttestors: [f],
    })),
    {
      match: `${REG}/own/**`,
      evaluationMode: 'requireAttestation',
      requireAttestors: { anyOf: ['cosign-ci', 'own'], min: 1 },
    },
  ];
  const policy = {
    apiVersion: 'pullgate.dev/v1',
    kind: 'Policy',
    attestors: {
      ...Object.fromEntries(layouts.map((f) => [f, attestor(f)])),
      'cosign-ci': { keys: [{ pem: (await import('../unit/policy/helpers.ts')).publicKeyPem() }] },
      own,
    },
    defaultRule: { evaluationMode: 'alwaysDeny' },
    rules,
  };
  proxy = await startTestProxy({
    policy: stringify(policy),
    config: { upstreams: [{ host: REG, url: registry.url, insecure: true }] },
  });
});

test.after.always(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function pull(repo: string, ref: string) {
  const res = await request(`${proxy.url}/v2/${REG}/${repo}/manifests/${ref}`, {
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  const body = await res.body.text();
  return { status: res.statusCode, body };
}

real.test('notation e2e layouts: the documented verdicts at strict', async (t) => {
  t.is((await pull('notation/jws-e2e-valid', 'v1')).status, 200);
  const cases: [string, RegExp][] = [
    ['jws-e2e-wrong-truststore', /authenticity failed .*does not contain any trusted certificate/],
    ['jws-e2e-expired-signature', /expiry failed .*digital signature has expired/],
    ['jws-e2e-not-an-envelope', /integrity failed .*is not a Notation envelope/],
    ['jws-e2e-expired-cert-no-timestamp', /authenticTimestamp failed .*it was expired at 2023-06-27T06:10:00/],
  ];
  for (const [folder, why] of cases) {
    const r = await pull(`notation/${folder}`, 'v1');
    t.is(r.status, 403, `${folder}: ${r.body}`);
    t.regex(r.body, why, folder);
  }
});

test('own images: JWS and COSE (current artifactType form) admitted by the Notation attestor in an N-of-M rule with cosign', async (t) => {
  t.is((await pull('own/jws', '1.0')).status, 200);
  t.is((await pull('own/cose', '1.0')).status, 200);
});

test('own images: a signer revoked by the configured CRL and a payload naming another digest are denied', async (t) => {
  const revoked = await pull('own/revoked', '1.0');
  t.is(revoked.status, 403);
  t.regex(revoked.body, /revocation failed .*CN=revoked-signer.* is revoked/);
  const other = await pull('own/other-digest', '1.0');
  t.is(other.status, 403);
  t.regex(other.body, /integrity failed .*signs another artifact: digest \\?"sha256:0000/);
});
