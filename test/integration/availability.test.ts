// Availability without weakening the gate: an admitted digest is served from the store while the
// upstream is down (within the grace period), a never-admitted one is not; shutdown drains transfers.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { buildImage, generateKey, pushImage, signImage, startRegistry } from '../harness/index.ts';
import { ALLOW_ALL, startTestProxy } from './proxy-fixture.ts';

const REG = 'registry.example.test';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

test('upstream down: pinned and admitted digests are served stale within the grace period, others are not', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'pullgate-avail-'));
  const registry = await startRegistry();
  const key = generateKey('ecdsa-p256');
  writeFileSync(join(work, 'ci.pub'), key.publicPem);
  const image = await buildImage(join(work, 'img'), '1', { seed: 'stale' });
  await pushImage(join(work, 'img'), '1', `${registry.host}/app/stale:1`);
  await signImage(registry, 'app/stale', image.digest, key.privateKey);
  const never = await buildImage(join(work, 'never'), '1', { seed: 'never' });
  await pushImage(join(work, 'never'), '1', `${registry.host}/app/never:1`);
  await signImage(registry, 'app/never', never.digest, key.privateKey);
  const proxy = await startTestProxy({
    policy: stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: join(work, 'ci.pub') }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    }),
    // no verdict caching, so that every pull needs the evidence and the stale path is what serves it
    config: {
      upstreams: [{ host: REG, url: registry.url, insecure: true, timeouts: { connectMs: 500, headersMs: 1000 } }],
      cache: { allowTtlSeconds: 0, denyTtlSeconds: 0 },
      staleGraceSeconds: 3,
    },
  });
  t.teardown(async () => {
    await proxy.close();
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const get = async (repo: string, ref: string) => {
    const res = await request(`${proxy.url}/v2/${REG}/${repo}/manifests/${ref}`, { headers: { accept: MANIFEST } });
    const body = await res.body.text();
    return { status: res.statusCode, digest: res.headers['docker-content-digest'], body };
  };

  t.is((await get('app/stale', '1')).digest, image.digest);
  await registry.stop();

  const byTag = await get('app/stale', '1');
  t.is(byTag.status, 200, byTag.body);
  t.is(byTag.digest, image.digest);
  t.is((await get('app/stale', image.digest)).status, 200);
  t.true(proxy.lines('stale serve: evidence unreachable, serving a digest admitted before').length >= 2);
  const neverAdmitted = await get('app/never', never.digest);
  t.not(neverAdmitted.status, 200, 'a digest never admitted is not served while the upstream is down');
  t.regex(neverAdmitted.body, /unreachable/);

  await new Promise((r) => setTimeout(r, 3200));
  const late = await get('app/stale', '1');
  t.is(late.status, 403, 'past the grace period the gate fails closed');
  t.regex(late.body, /evidence could not be checked/);
});

test('graceful shutdown lets a running blob transfer finish', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'pullgate-drain-'));
  const registry = await startRegistry();
  const image = await buildImage(join(work, 'img'), '1', { seed: 'drain', layerBytes: 48 * 1024 * 1024 });
  await pushImage(join(work, 'img'), '1', `${registry.host}/app/big:1`);
  const proxy = await startTestProxy({
    policy: ALLOW_ALL,
    config: { upstreams: [{ host: REG, url: registry.url, insecure: true }] },
  });
  t.teardown(async () => {
    await proxy.close();
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const m = await request(`${proxy.url}/v2/${REG}/app/big/manifests/1`, { headers: { accept: MANIFEST } });
  await m.body.dump();
  const layer = image.blobs.at(-1)!;
  const res = await request(`${proxy.url}/v2/${REG}/app/big/blobs/${layer}`);
  t.is(res.statusCode, 200);
  const hash = createHash('sha256');
  let first = true;
  let closing: Promise<void> | undefined;
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    if (first) {
      first = false;
      closing = proxy.proxy.close(20_000);
      const refused = await request(`${proxy.url}/readyz`).then(
        (r) => r.statusCode,
        () => 'refused',
      );
      t.not(refused, 200, 'no new work is accepted while draining');
    }
  }
  await closing;
  t.is(`sha256:${hash.digest('hex')}`, layer, 'the transfer completed with the right content');
});
