// Issue 8: the blob path through a real proxy from a real registry: permits that mean "admitted
// now", the content-addressed cache (one upstream fetch, eviction, restart, a shared volume),
// crafted signature manifests, and pulls that survive an upstream outage.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
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
  startContainerd,
  startRegistry,
  uploadBlob,
  waitFor,
  type BuiltImage,
  type Registry,
} from '../harness/index.ts';
import { startTestProxy, type TestProxy } from './proxy-fixture.ts';

const REG = 'registry.example.test';
const TOKEN = 'test-admin-token-0123456789';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const work = mkdtempSync(join(tmpdir(), 'pullgate-blobs-'));
const key = generateKey('ecdsa-p256');
const otherKey = generateKey('ecdsa-p256');
let registry: Registry;
let version = 0;
const proxies: TestProxy[] = [];

test.before(async () => {
  registry = await startRegistry();
  writeFileSync(join(work, 'ci.pub'), key.publicPem);
  writeFileSync(join(work, 'other.pub'), otherKey.publicPem);
});

test.after.always(async () => {
  for (const p of proxies) await p.close().catch(() => undefined);
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

function policy(opts: { keyFile?: string; dryrunMatch?: string } = {}): string {
  return stringify({
    apiVersion: 'pullgate.dev/v1',
    kind: 'Policy',
    attestors: { ci: { keys: [{ file: join(work, opts.keyFile ?? 'ci.pub') }] } },
    defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    rules: opts.dryrunMatch
      ? [
          {
            match: opts.dryrunMatch,
            evaluationMode: 'requireAttestation',
            requireAttestors: ['ci'],
            enforcementMode: 'dryrun',
          },
        ]
      : [],
  });
}

async function newProxy(reg: Registry, config: Record<string, unknown> = {}, pol = policy()): Promise<TestProxy> {
  const p = await startTestProxy({
    policy: pol,
    config: {
      upstreams: [{ host: REG, url: reg.url, insecure: true }],
      admin: { host: '127.0.0.1', port: 0, token: TOKEN },
      ...config,
    },
  });
  proxies.push(p);
  return p;
}

async function pushNew(reg: Registry, repo: string, signed: boolean, layerBytes?: number): Promise<BuiltImage> {
  const dir = join(work, `img-${++version}`);
  const image = await buildImage(dir, '1', { seed: `${repo}:${version}`, ...(layerBytes ? { layerBytes } : {}) });
  await pushImage(dir, '1', `${reg.host}/${repo}:1`);
  if (signed) await signImage(reg, repo, image.digest, key.privateKey);
  rmSync(dir, { recursive: true, force: true });
  return image;
}

async function get(p: TestProxy, path: string, headers: Record<string, string> = {}) {
  const res = await request(`${p.url}/v2/${REG}/${path}`, { headers: { accept: MANIFEST, ...headers } });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, bytes, text: bytes.toString('utf8') };
}

async function admin(p: TestProxy, method: 'POST' | 'DELETE', path: string, body?: unknown) {
  const res = await request(`${p.proxy.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const layerOf = (image: BuiltImage) => image.blobs.at(-1)!;

/** Waits until a blob answers `status` (permits are re-derived within seconds of a change). */
async function blobStatusBecomes(p: TestProxy, repo: string, blob: string, status: number): Promise<number> {
  return waitFor(
    async () => {
      const r = await get(p, `${repo}/blobs/${blob}`);
      return r.status === status ? r.status : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 200, what: `blob ${blob} answering ${status}` },
  );
}

test('revocation withdraws the layers of an image at once', async (t) => {
  const p = await newProxy(registry);
  const image = await pushNew(registry, 'gate/revoked', true);
  t.is((await get(p, 'gate/revoked/manifests/1')).status, 200);
  t.is((await get(p, `gate/revoked/blobs/${layerOf(image)}`)).status, 200);
  t.is((await admin(p, 'POST', '/api/v1/revocations', { digest: image.digest, reason: 'CVE-2026-1' })).status, 200);
  const r = await get(p, `gate/revoked/blobs/${layerOf(image)}`);
  t.is(r.status, 403);
  t.regex(r.text, /blob is not part of an admitted image/);
});

test('an expired break-glass grant withdraws the layers it let through', async (t) => {
  const p = await newProxy(registry);
  const image = await pushNew(registry, 'gate/granted', false);
  t.is((await get(p, `gate/granted/manifests/${image.digest}`)).status, 403);
  t.is(
    (await admin(p, 'POST', '/api/v1/grants', { digest: image.digest, expiresIn: '3s', reason: 'incident' })).status,
    200,
  );
  t.is((await get(p, `gate/granted/manifests/${image.digest}`)).status, 200);
  t.is((await get(p, `gate/granted/blobs/${layerOf(image)}`)).status, 200);
  await new Promise((r) => setTimeout(r, 3_500));
  const after = await get(p, `gate/granted/blobs/${layerOf(image)}`);
  t.is(after.status, 403);
  t.regex(after.text, /denied by policy/);
});

test('a policy that stops trusting the signing key withdraws the layers', async (t) => {
  const p = await newProxy(registry);
  const image = await pushNew(registry, 'gate/rekeyed', true);
  t.is((await get(p, 'gate/rekeyed/manifests/1')).status, 200);
  t.is((await get(p, `gate/rekeyed/blobs/${layerOf(image)}`)).status, 200);
  p.writePolicy(policy({ keyFile: 'other.pub' }));
  t.true(p.proxy.policy.reload().changed);
  t.is(await blobStatusBecomes(p, 'gate/rekeyed', layerOf(image), 403), 403);
  t.is((await get(p, 'gate/rekeyed/manifests/1')).status, 403, 'and the manifest with them');
});

test('what a dry run admitted ends with the dry run', async (t) => {
  const p = await newProxy(registry, {}, policy({ dryrunMatch: `${REG}/gate/dryrun` }));
  const image = await pushNew(registry, 'gate/dryrun', false);
  t.is((await get(p, 'gate/dryrun/manifests/1')).status, 200, 'dry run: served, and audited as a would-deny');
  t.is((await get(p, `gate/dryrun/blobs/${layerOf(image)}`)).status, 200);
  p.writePolicy(policy());
  t.true(p.proxy.policy.reload().changed);
  t.is(await blobStatusBecomes(p, 'gate/dryrun', layerOf(image), 403), 403);
});

test("a crafted signature manifest can neither change an image layer's permit nor make a denied image's blobs servable", async (t) => {
  const p = await newProxy(registry);
  const admitted = await pushNew(registry, 'gate/crafted', true);
  const denied = await pushNew(registry, 'gate/crafted-denied', false);
  t.is((await get(p, 'gate/crafted/manifests/1')).status, 200);
  // The denied image's small config blob, pushed into the admitted image's repository.
  const deniedConfig = await request(`${registry.url}/v2/gate/crafted-denied/blobs/${denied.blobs[0]}`)
    .then((r) => r.body.arrayBuffer())
    .then(Buffer.from);
  const configDigest = await uploadBlob(registry, 'gate/crafted', deniedConfig);
  t.is(configDigest, denied.blobs[0]!);
  const emptyConfig = await uploadBlob(registry, 'gate/crafted', Buffer.from('{}'));
  const sig = {
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: emptyConfig, size: 2 },
    layers: [
      // A real layer of the admitted image, declared tiny: it must keep its own, unbounded permit.
      { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: layerOf(admitted), size: 10 },
      // Another image's blob posing as a signature: it does not name the admitted image.
      {
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        digest: configDigest,
        size: deniedConfig.length,
      },
    ],
  };
  const sigTag = `${admitted.digest.replace(':', '-')}.sig`;
  await putManifest(registry, 'gate/crafted', sigTag, Buffer.from(JSON.stringify(sig)), MANIFEST);
  t.is((await get(p, `gate/crafted/manifests/${sigTag}`)).status, 200, 'pure evidence of an admitted image is served');
  const layer = await get(p, `gate/crafted/blobs/${layerOf(admitted)}`);
  t.is(layer.status, 200);
  t.is(sha256(layer.bytes), layerOf(admitted), 'the layer is served whole, not cut to the declared size');
  const smuggled = await get(p, `gate/crafted/blobs/${configDigest}`);
  t.is(smuggled.status, 403);
  t.regex(smuggled.text, /listed as evidence for sha256:[a-f0-9]+, but it does not name/);
  t.is((await get(p, `gate/crafted/blobs/${layerOf(admitted)}`)).status, 200, 'and the proxy is still up');
});

test('ten concurrent cold requests for one blob make one upstream fetch; a later request is a cache hit', async (t) => {
  const p = await newProxy(registry);
  const image = await pushNew(registry, 'gate/fanout', true, 8 * 1024 * 1024);
  t.is((await get(p, 'gate/fanout/manifests/1')).status, 200);
  const blob = layerOf(image);
  const fetches = () => registry.requests(new RegExp(`^GET /v2/gate/fanout/blobs/${blob}`));
  const before = await fetches();
  const got = await Promise.all(Array.from({ length: 10 }, () => get(p, `gate/fanout/blobs/${blob}`)));
  for (const g of got) {
    t.is(g.status, 200);
    t.is(sha256(g.bytes), blob);
  }
  const again = await get(p, `gate/fanout/blobs/${blob}`);
  t.is(again.status, 200);
  await new Promise((r) => setTimeout(r, 300));
  t.is((await fetches()) - before, 1, 'the upstream received one GET for the blob');
  const metrics = await request(`${p.url}/metrics`).then((r) => r.body.text());
  t.regex(metrics, /pullgate_blob_cache_requests_total\{result="hit"\} [1-9]/);
  t.regex(metrics, /pullgate_blob_fills_total\{upstream="registry.example.test",outcome="ok"\} 1/);
});

test('a cold Range request waits for the verified fill; ranges are served from the cache', async (t) => {
  const p = await newProxy(registry);
  const image = await pushNew(registry, 'gate/range', true, 2 * 1024 * 1024);
  t.is((await get(p, 'gate/range/manifests/1')).status, 200);
  const blob = layerOf(image);
  const whole = await request(`${registry.url}/v2/gate/range/blobs/${blob}`)
    .then((r) => r.body.arrayBuffer())
    .then(Buffer.from);
  const part = await get(p, `gate/range/blobs/${blob}`, { range: 'bytes=1000-1999' });
  t.is(part.status, 206);
  t.is(part.headers['content-range'], `bytes 1000-1999/${whole.length}`);
  t.true(part.bytes.equals(whole.subarray(1000, 2000)));
  const tail = await get(p, `gate/range/blobs/${blob}`, { range: `bytes=${whole.length - 10}-` });
  t.true(tail.bytes.equals(whole.subarray(whole.length - 10)));
  const outside = await get(p, `gate/range/blobs/${blob}`, { range: `bytes=${whole.length}-` });
  t.is(outside.status, 416);
  t.is(outside.headers['content-range'], `bytes */${whole.length}`);
  const head = await request(`${p.url}/v2/${REG}/gate/range/blobs/${blob}`, { method: 'HEAD' });
  await head.body.dump();
  t.is(head.statusCode, 200);
  t.is(head.headers['content-length'], String(whole.length));
});

test('eviction under a small maxBytes never breaks a download in progress; a restart keeps the cache', async (t) => {
  const dir = join(work, 'evict-cache');
  const config = { cache: { blobs: { path: dir, maxBytes: 5 * 1024 * 1024 } } };
  const p = await newProxy(registry, config);
  const images = [];
  for (let i = 0; i < 3; i++) images.push(await pushNew(registry, `gate/evict-${i}`, true, 3 * 1024 * 1024));
  for (let i = 0; i < 3; i++) t.is((await get(p, `gate/evict-${i}/manifests/1`)).status, 200);
  const [first, second, third] = images.map(layerOf) as [string, string, string];
  t.is((await get(p, `gate/evict-0/blobs/${first}`)).status, 200);
  // A client that reads the first blob slowly while the others evict it.
  const slow = await slowDownload(p, `/v2/${REG}/gate/evict-0/blobs/${first}`);
  for (const [i, blob] of [second, third].entries()) {
    const r = await get(p, `gate/evict-${i + 1}/blobs/${blob}`);
    t.is(sha256(r.bytes), blob);
  }
  // Entries are committed (and others evicted) just after their last byte is sent.
  const evicted = await waitFor(
    async () =>
      /pullgate_blob_cache_evictions_total [1-9]/.test(await request(`${p.url}/metrics`).then((r) => r.body.text())) ||
      undefined,
    { timeoutMs: 10_000, what: 'an eviction' },
  );
  t.true(evicted);
  t.is(sha256(await slow.finish()), first, 'the slow download completed whole and right');

  // A new process over the same cache directory serves what is there without asking the upstream.
  await p.close();
  proxies.splice(proxies.indexOf(p), 1);
  const fetches = () => registry.requests(new RegExp(`^GET /v2/gate/evict-2/blobs/${third}`));
  const before = await fetches();
  const restarted = await newProxy(registry, config);
  t.is((await get(restarted, 'gate/evict-2/manifests/1')).status, 200);
  const r = await get(restarted, `gate/evict-2/blobs/${third}`);
  t.is(sha256(r.bytes), third);
  await new Promise((res) => setTimeout(res, 300));
  t.is((await fetches()) - before, 0);
});

test('two replicas sharing one cache volume: a blob one fetched is served by the other without an upstream fetch', async (t) => {
  const dir = join(work, 'shared-cache');
  const a = await newProxy(registry, { cache: { blobs: { path: dir } } });
  const b = await newProxy(registry, { cache: { blobs: { path: dir } } });
  const image = await pushNew(registry, 'gate/shared', true, 1024 * 1024);
  const blob = layerOf(image);
  for (const p of [a, b]) t.is((await get(p, 'gate/shared/manifests/1')).status, 200);
  const fetches = () => registry.requests(new RegExp(`^GET /v2/gate/shared/blobs/${blob}`));
  const before = await fetches();
  t.is(sha256((await get(a, `gate/shared/blobs/${blob}`)).bytes), blob);
  await waitFor(
    async () =>
      /pullgate_blob_fills_total\{[^}]*outcome="ok"\} 1/.test(
        await request(`${a.url}/metrics`).then((r) => r.body.text()),
      ) || undefined,
    { timeoutMs: 5_000, what: 'the fill in the cache' },
  );
  t.is(sha256((await get(b, `gate/shared/blobs/${blob}`)).bytes), blob);
  await new Promise((res) => setTimeout(res, 300));
  t.is((await fetches()) - before, 1, 'one fetch for both replicas');
  t.is((await get(b, `gate/shared/blobs/${image.blobs[0]}`)).status, 200, 'the other blobs too');
});

test('containerd pulls through the proxy, the upstream goes away, and a node with an empty store still pulls the image', async (t) => {
  const upstream = await startRegistry();
  const p = await newProxy(upstream, { tagRecheckSeconds: 0 });
  const image = await pushNew(upstream, 'gate/outage', true, 1024 * 1024);
  const notFetched = await pushNew(upstream, 'gate/outage-cold', true, 1024 * 1024);
  const hosts = { registry: REG, server: p.url, mirrors: [p.url] };
  const first = await startContainerd();
  const second = await startContainerd();
  try {
    const r1 = await first.pull(`${REG}/gate/outage:1`, hosts);
    t.is(r1.code, 0, r1.stderr);
    t.is((await get(p, 'gate/outage-cold/manifests/1')).status, 200);
    await upstream.stop();
    const r2 = await second.pull(`${REG}/gate/outage:1`, hosts);
    t.is(r2.code, 0, r2.stderr);
    t.is(await second.imageDigest(`${REG}/gate/outage:1`), image.digest);
    // An admitted blob that was never fetched cannot come from anywhere: 502 naming the upstream.
    const cold = await get(p, `gate/outage-cold/blobs/${layerOf(notFetched)}`);
    t.is(cold.status, 502);
    t.regex(cold.text, /upstream registry\.example\.test is unreachable/);
  } finally {
    await first.stop();
    await second.stop();
  }
});

/** A raw HTTP client that reads one chunk, stalls, and reads the rest only when told to. */
async function slowDownload(p: TestProxy, path: string): Promise<{ finish(): Promise<Buffer> }> {
  const { port, hostname } = new URL(p.url);
  const socket = connect(Number(port), hostname);
  const parts: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
  await new Promise<void>((resolve) => socket.once('data', (d: Buffer) => (parts.push(d), resolve())));
  socket.pause();
  return {
    finish: () =>
      new Promise<Buffer>((resolve, reject) => {
        socket.on('data', (d: Buffer) => parts.push(d));
        socket.once('end', () => {
          const all = Buffer.concat(parts);
          const at = all.indexOf('\r\n\r\n');
          resolve(all.subarray(at + 4));
        });
        socket.once('error', reject);
        socket.resume();
      }),
  };
}
