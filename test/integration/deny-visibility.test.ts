// Issue 11: a deny a kubelet user can act on. A refused manifest pull carries its reason in the
// status line and the pullgate-reason header on HEAD (which containerd uses, and which has no
// body) and GET; every kind of refused pull counts in pullgate_denied_pulls_total by image and reason.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { buildImage, generateKey, pushImage, signImage, startRegistry, type Registry } from '../harness/index.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';

const REG = 'registry.example.test';
const OPS = 'ops-token-0123456789abcdef';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const work = mkdtempSync(join(tmpdir(), 'pullgate-denies-'));
const key = generateKey('ecdsa-p256');
let registry: Registry;
let proxy: TestProxy;
let version = 0;

test.before(async () => {
  registry = await startRegistry();
  proxy = await startTestProxy({
    policy: stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ pem: key.publicPem }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
      rules: [
        { match: `${REG}/locked/**`, evaluationMode: 'requireAttestation', requireAttestors: ['ci'], tagMode: 'deny' },
      ],
    }),
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true }],
      admin: { host: '127.0.0.1', port: 0, tokens: [{ name: 'ops', token: OPS }] },
      tagRecheckSeconds: 0,
    },
  });
});

test.after.always(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function pushNew(repo: string, tag: string, signed: boolean): Promise<string> {
  const dir = join(work, `img-${++version}`);
  const image = await buildImage(dir, tag, { seed: `${repo}:${tag}:${version}` });
  await pushImage(dir, tag, `${registry.host}/${repo}:${tag}`);
  if (signed) await signImage(registry, repo, image.digest, key.privateKey);
  return image.digest;
}

/** A manifest request as containerd makes it, with the status line (undici does not expose its text). */
function ask(method: 'GET' | 'HEAD', path: string) {
  const url = new URL(`${proxy.url}/v2/${path}`);
  return new Promise<{ status: number; statusMessage: string; reason?: string; body: string }>((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { accept: MANIFEST }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          ...(typeof res.headers['pullgate-reason'] === 'string' ? { reason: res.headers['pullgate-reason'] } : {}),
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30s`)));
    req.on('error', reject);
    req.end();
  });
}

async function denied(image: string, reason: string): Promise<number> {
  const text = await (await request(`${proxy.url}/metrics`)).body.text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`pullgate_denied_pulls_total{image="${image}",reason="${reason}"} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('a policy deny says why on HEAD and GET: status line and pullgate-reason header; GET also in the body', async (t) => {
  const digest = await pushNew('app/unsigned', '1', false);
  for (const ref of ['1', digest]) {
    for (const method of ['HEAD', 'GET'] as const) {
      const r = await ask(method, `${REG}/app/unsigned/manifests/${ref}`);
      t.is(r.status, 403, `${method} ${ref}`);
      t.regex(r.reason ?? '', /denied by policy \(default\): attestor "ci": no signatures or attestations found/);
      // Both are cut to 300 characters: the status line keeps the head of the same reason.
      t.true(r.statusMessage.startsWith(`Forbidden by pullgate: ${(r.reason ?? '').slice(0, 200)}`), r.statusMessage);
      if (method === 'HEAD') t.is(r.body, '');
      else t.regex(r.body, /"code":"DENIED".*denied by policy \(default\)/);
    }
  }
  t.is(await denied(`${REG}/app/unsigned`, 'policy'), 4);
});

test('refused pulls count by image and reason: revoked, a moved tag under tagMode deny, a registry not allowlisted', async (t) => {
  const revoked = await pushNew('app/revoked', '1', true);
  t.is((await ask('GET', `${REG}/app/revoked/manifests/1`)).status, 200);
  const res = await request(`${proxy.proxy.adminUrl}/api/v1/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${OPS}`, 'content-type': 'application/json' },
    body: JSON.stringify({ digest: revoked, reason: 'CVE-2026-1' }),
  });
  t.is(res.statusCode, 200);
  await res.body.dump();
  const refusedRevoked = await ask('HEAD', `${REG}/app/revoked/manifests/1`);
  t.is(refusedRevoked.status, 403);
  t.regex(refusedRevoked.reason ?? '', /revoked by admin:ops .*CVE-2026-1/);
  t.is(await denied(`${REG}/app/revoked`, 'revoked'), 1);

  await pushNew('locked/app', '1', true);
  t.is((await ask('GET', `${REG}/locked/app/manifests/1`)).status, 200);
  await pushNew('locked/app', '1', true);
  const moved = await ask('HEAD', `${REG}/locked/app/manifests/1`);
  t.is(moved.status, 403);
  t.regex(moved.reason ?? '', /moved upstream from sha256:\w+ to sha256:\w+; this rule refuses moved tags/);
  t.is(await denied(`${REG}/locked/app`, 'moved-tag'), 1);

  for (const name of ['evil.example/one', 'evil.example/two', 'other.example/x']) {
    const r = await ask('HEAD', `${name}/manifests/latest`);
    t.is(r.status, 403);
    t.regex(r.reason ?? '', /is not in this proxy's allowlist/);
  }
  const blob = await ask('HEAD', `evil.example/one/blobs/sha256:${'0'.repeat(64)}`);
  t.is(blob.status, 403);
  t.is(await denied('(not allowlisted)', 'not-allowlisted'), 3, 'manifest pulls only, under one label');
  const text = await (await request(`${proxy.url}/metrics`)).body.text();
  t.false(text.includes('evil.example'), 'a name the client made up never becomes a label');
});
