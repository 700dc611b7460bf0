// Issue 4: the tag-overwrite attack against a real registry, blob gating, revocation, break-glass
// and the audit trail, through the real proxy and its admin API.
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
  putManifest,
  signImage,
  startRegistry,
  waitFor,
  type Registry,
} from '../harness/index.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';

const REG = 'registry.example.test';
const TOKEN = 'test-admin-token-0123456789';
const work = mkdtempSync(join(tmpdir(), 'pullgate-pin-'));
const key = generateKey('ecdsa-p256');
let registry: Registry;
let proxy: TestProxy;
let version = 0;

test.before(async () => {
  registry = await startRegistry();
  writeFileSync(join(work, 'ci.pub'), key.publicPem);
  const rule = (match: string, tagMode: string) => ({
    match,
    evaluationMode: 'requireAttestation',
    requireAttestors: ['ci'],
    tagMode,
  });
  proxy = await startTestProxy({
    policy: stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: join(work, 'ci.pub') }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
      rules: [rule(`${REG}/pin/*`, 'pin'), rule(`${REG}/deny/*`, 'deny'), rule(`${REG}/follow/*`, 'follow')],
    }),
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      admin: { host: '127.0.0.1', port: 0, token: TOKEN },
      // Every pull asks the upstream whether the tag moved (in the background in pin mode).
      tagRecheckSeconds: 0,
    },
  });
});

test.after.always(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Pushes a fresh image to repo:tag (optionally signed) and returns its digest and blobs. */
async function pushNew(repo: string, tag: string, signed: boolean) {
  const dir = join(work, `img-${++version}`);
  const image = await buildImage(dir, tag, { seed: `${repo}:${tag}:${version}` });
  await pushImage(dir, tag, `${registry.host}/${repo}:${tag}`);
  if (signed) await signImage(registry, repo, image.digest, key.privateKey);
  return image;
}

async function manifest(repo: string, ref: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`${proxy.url}/v2/${REG}/${repo}/manifests/${ref}`, {
    method,
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const body = method === 'GET' ? await res.body.text() : (await res.body.dump(), '');
  return {
    status: res.statusCode,
    digest: res.headers['docker-content-digest'] as string | undefined,
    message: res.statusCode === 200 || !body ? '' : String(JSON.parse(body).errors[0].message),
  };
}

async function admin(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, token = TOKEN) {
  const res = await request(`${proxy.proxy.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

for (const signedOverwrite of [false, true]) {
  const variant = signedOverwrite ? 'signed' : 'unsigned';

  test(`pin mode, ${variant} overwrite: the pinned digest keeps being served and drift is recorded`, async (t) => {
    const repo = `pin/app-${variant}`;
    const first = await pushNew(repo, '1', true);
    t.is((await manifest(repo, '1')).digest, first.digest);
    const second = await pushNew(repo, '1', signedOverwrite);
    const head = await manifest(repo, '1', 'HEAD');
    t.is(head.status, 200);
    t.is(head.digest, first.digest, 'HEAD (what containerd resolves) answers the pin');
    t.is((await manifest(repo, '1')).digest, first.digest);
    // Pin mode answers from the store and re-checks the upstream in the background.
    const recorded = await waitFor(
      async () => {
        const drift = (await admin('GET', '/api/v1/drift')).body.drift as {
          repository: string;
          pinnedDigest: string;
          upstreamDigest: string;
        }[];
        return (
          drift.some(
            (d) => d.repository === repo && d.pinnedDigest === first.digest && d.upstreamDigest === second.digest,
          ) || undefined
        );
      },
      { timeoutMs: 5_000, intervalMs: 50, what: 'the drift record' },
    );
    t.true(recorded);
  });

  test(`deny mode, ${variant} overwrite: the moved tag is refused with both digests and how to approve`, async (t) => {
    const repo = `deny/app-${variant}`;
    const first = await pushNew(repo, '1', true);
    t.is((await manifest(repo, '1')).status, 200);
    const second = await pushNew(repo, '1', signedOverwrite);
    const r = await manifest(repo, '1');
    t.is(r.status, 403);
    t.true(r.message.includes(first.digest) && r.message.includes(second.digest), r.message);
    t.regex(r.message, /pullgate pins approve/);
    if (signedOverwrite) {
      t.is(
        (await admin('POST', '/api/v1/pins/approve', { image: `${REG}/${repo}:1`, digest: second.digest })).status,
        200,
      );
      t.is((await manifest(repo, '1')).digest, second.digest, 'after approval the new digest is served');
    }
  });

  test(`follow mode, ${variant} overwrite: the pin moves only to a digest that passes policy`, async (t) => {
    const repo = `follow/app-${variant}`;
    const first = await pushNew(repo, '1', true);
    t.is((await manifest(repo, '1')).digest, first.digest);
    const second = await pushNew(repo, '1', signedOverwrite);
    t.is((await manifest(repo, '1')).digest, signedOverwrite ? second.digest : first.digest);
    const pins = (await admin('GET', '/api/v1/pins')).body.pins as { repository: string; digest: string }[];
    t.is(pins.find((p) => p.repository === repo)?.digest, signedOverwrite ? second.digest : first.digest);
  });
}

test('an index pushed under an evidence tag does not admit the manifests it lists', async (t) => {
  const admitted = await pushNew('pin/evil', '1', true);
  const payload = await pushNew('pin/evil', 'payload', false);
  t.is((await manifest('pin/evil', '1')).status, 200);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: payload.digest, size: 1 }],
  };
  await putManifest(
    registry,
    'pin/evil',
    admitted.digest.replace(':', '-'),
    Buffer.from(JSON.stringify(index)),
    index.mediaType,
  );
  const viaEvidenceTag = await request(
    `${proxy.url}/v2/${REG}/pin/evil/manifests/${admitted.digest.replace(':', '-')}`,
    { headers: { accept: index.mediaType } },
  );
  await viaEvidenceTag.body.dump();
  t.is(viaEvidenceTag.statusCode, 200, 'the referrers fallback index of an admitted image is served');
  const child = await manifest('pin/evil', payload.digest);
  t.is(child.status, 403, 'but the unsigned manifest it lists is still judged on its own');
  t.regex(child.message, /denied by policy/);
});

test('pulls by digest never create pins', async (t) => {
  const image = await pushNew('pin/bydigest', '1', true);
  t.is((await manifest('pin/bydigest', image.digest)).status, 200);
  const pins = (await admin('GET', '/api/v1/pins')).body.pins as { repository: string }[];
  t.false(pins.some((p) => p.repository === 'pin/bydigest'));
});

test('blob gating: only blobs of admitted manifests are served', async (t) => {
  const unsigned = await pushNew('pin/blobs-unsigned', '1', false);
  const signed = await pushNew('pin/blobs-signed', '1', true);
  const blob = async (repo: string, digest: string) => {
    const res = await request(`${proxy.url}/v2/${REG}/${repo}/blobs/${digest}`);
    const text = await res.body.text();
    return { status: res.statusCode, text };
  };
  for (const d of unsigned.blobs) {
    const r = await blob('pin/blobs-unsigned', d);
    t.is(r.status, 403);
    t.regex(r.text, /not part of an admitted image/);
  }
  t.is((await manifest('pin/blobs-unsigned', '1')).status, 403);
  t.is(
    (await blob('pin/blobs-unsigned', unsigned.blobs[0]!)).status,
    403,
    'a denied manifest admits none of its blobs',
  );
  t.is((await manifest('pin/blobs-signed', '1')).status, 200);
  for (const d of signed.blobs) t.is((await blob('pin/blobs-signed', d)).status, 200);
  t.is((await blob('pin/blobs-unsigned', signed.blobs[1]!)).status, 403, 'admission is per repository');
});

test.serial('revocation: the digest and every tag pinned to it are denied at once; unrevoke restores', async (t) => {
  const image = await pushNew('pin/revoked', '1', true);
  t.is((await manifest('pin/revoked', '1')).status, 200);
  t.is((await admin('POST', '/api/v1/revocations', { digest: image.digest, reason: 'CVE-2026-0001' })).status, 200);
  const byTag = await manifest('pin/revoked', '1');
  t.is(byTag.status, 403);
  t.regex(byTag.message, /revoked.*CVE-2026-0001/);
  t.is((await manifest('pin/revoked', image.digest)).status, 403);
  t.is((await admin('DELETE', `/api/v1/revocations/${image.digest}`)).status, 200);
  t.is((await manifest('pin/revoked', '1')).status, 200);
});

test.serial('break-glass: a grant admits a denied digest until it expires; every use is audited', async (t) => {
  const image = await pushNew('pin/breakglass', '1', false);
  t.is((await manifest('pin/breakglass', image.digest)).status, 403);
  const g = await admin('POST', '/api/v1/grants', { digest: image.digest, expiresIn: '1h', reason: 'incident 42' });
  t.is(g.status, 200);
  t.is((await manifest('pin/breakglass', image.digest)).status, 200);
  const uses = (await admin('GET', `/api/v1/audit?kind=grant-use&digest=${image.digest}`)).body.records as unknown[];
  t.true(uses.length >= 1);
  t.is((await admin('DELETE', `/api/v1/grants/${(g.body.grant as { id: string }).id}`)).status, 200);
  t.is((await manifest('pin/breakglass', image.digest)).status, 403);
});

test('admin API: no token, wrong token → 401; the audit chain verifies', async (t) => {
  const none = await request(`${proxy.proxy.adminUrl}/api/v1/pins`);
  await none.body.dump();
  t.is(none.statusCode, 401);
  t.is((await admin('GET', '/api/v1/pins', undefined, 'wrong-token-wrong-token')).status, 401);
  const verified = (await admin('GET', '/api/v1/audit/verify')).body;
  t.true(verified.ok as boolean);
  t.true((verified.records as number) > 0);
});
