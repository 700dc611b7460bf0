// Issue 2: real clients pull through the proxy from a real distribution registry.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as rawRequest } from 'node:http';
import { request } from 'undici';
import {
  buildImage,
  freePort,
  pushImage,
  pushReferrer,
  skopeoCopy,
  skopeoInspectDigest,
  startContainerd,
  startRegistry,
  type Containerd,
  type Registry,
} from '../harness/index.ts';
import { ALLOW_ALL, startTestProxy, type TestProxy } from './proxy-fixture.ts';

let registry: Registry;
let tokenRegistry: Registry;
let proxy: TestProxy;
let containerd: Containerd;
let single: Awaited<ReturnType<typeof buildImage>>;
let multi: Awaited<ReturnType<typeof buildImage>>;
const work = mkdtempSync(join(tmpdir(), 'pullgate-pt-'));
const REGISTRY_NAME = 'registry.example.test';

test.before(async () => {
  [registry, tokenRegistry] = await Promise.all([startRegistry(), startRegistry({ auth: 'token' })]);
  single = await buildImage(join(work, 'single'), '1.0', { seed: 'single' });
  multi = await buildImage(join(work, 'multi'), '1.0', { seed: 'multi', platforms: ['linux/amd64', 'linux/arm64'] });
  await pushImage(join(work, 'single'), '1.0', `${registry.host}/demo/single:1.0`);
  await pushImage(join(work, 'single'), '1.0', `${registry.host}/demo/single:2.0`);
  await pushImage(join(work, 'multi'), '1.0', `${registry.host}/demo/multi:1.0`);
  await pushImage(join(work, 'single'), '1.0', `${tokenRegistry.host}/private/app:1.0`, {
    creds: tokenRegistry.credentials!,
  });
  proxy = await startTestProxy({
    policy: ALLOW_ALL,
    config: {
      upstreams: [
        { host: REGISTRY_NAME, url: registry.url, insecure: true, aliases: [registry.host] },
        {
          host: 'private.example.test',
          url: tokenRegistry.url,
          insecure: true,
          // the token server is another port on loopback: allowlisted for the credentials (and connections)
          tokenRealms: [new URL(tokenRegistry.tokenServer!.url).host],
          username: tokenRegistry.credentials!.username,
          password: tokenRegistry.credentials!.password,
        },
      ],
      defaultUpstream: REGISTRY_NAME,
    },
  });
});

test.after.always(async () => {
  await containerd?.stop();
  await proxy?.close();
  await Promise.all([registry?.stop(), tokenRegistry?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`${proxy.url}${path}`, { method, headers });
  const body = method === 'HEAD' ? '' : await res.body.text();
  if (method === 'HEAD') await res.body.dump();
  return { status: res.statusCode, headers: res.headers, body };
}

test('GET /v2/ answers with the distribution API version header', async (t) => {
  const r = await get('/v2/');
  t.is(r.status, 200);
  t.is(r.headers['docker-distribution-api-version'], 'registry/2.0');
});

test('manifest by tag: exact bytes, upstream media type, digest computed by the proxy; HEAD agrees', async (t) => {
  const direct = await request(`${registry.url}/v2/demo/single/manifests/1.0`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const directBytes = Buffer.from(await direct.body.arrayBuffer());
  const r = await request(`${proxy.url}/v2/${REGISTRY_NAME}/demo/single/manifests/1.0`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const bytes = Buffer.from(await r.body.arrayBuffer());
  t.is(r.statusCode, 200);
  t.true(bytes.equals(directBytes));
  t.is(r.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
  t.is(r.headers['docker-content-digest'], single.digest);
  const head = await get(`/v2/${REGISTRY_NAME}/demo/single/manifests/1.0`, {}, 'HEAD');
  t.is(head.status, 200);
  t.is(head.headers['docker-content-digest'], single.digest);
  t.is(head.headers['content-length'], String(bytes.length));
});

test('skopeo copies single-arch and multi-arch images through the proxy with identical digests', async (t) => {
  for (const [repo, image] of [
    ['demo/single', single],
    ['demo/multi', multi],
  ] as const) {
    const dest = join(work, `copy-${repo.replace('/', '-')}`);
    await skopeoCopy(`docker://${proxy.host}/${REGISTRY_NAME}/${repo}:1.0`, `oci:${dest}:1.0`, { all: true });
    t.is(await skopeoInspectDigest(`docker://${proxy.host}/${REGISTRY_NAME}/${repo}:1.0`), image.digest);
    t.is(await skopeoInspectDigest(`oci:${dest}:1.0`), image.digest);
  }
});

test('bearer-token upstream: the proxy negotiates tokens and caches them per scope', async (t) => {
  const before = tokenRegistry.tokenServer!.requests();
  const dest = join(work, 'copy-private');
  await skopeoCopy(`docker://${proxy.host}/private.example.test/private/app:1.0`, `oci:${dest}:1.0`);
  t.is(await skopeoInspectDigest(`oci:${dest}:1.0`), single.digest);
  const used = tokenRegistry.tokenServer!.requests() - before;
  t.true(used >= 1, 'a token was fetched');
  await skopeoCopy(
    `docker://${proxy.host}/private.example.test/private/app:1.0`,
    `oci:${join(work, 'copy-private-2')}:1.0`,
  );
  t.is(tokenRegistry.tokenServer!.requests() - before, used, 'the second pull reused the cached token');
});

test('containerd pulls through the proxy as its mirror, using the ns parameter', async (t) => {
  containerd = await startContainerd();
  const r = await containerd.pull(`${REGISTRY_NAME}/demo/multi:1.0`, {
    registry: REGISTRY_NAME,
    server: `https://${REGISTRY_NAME}`,
    mirrors: [proxy.url],
  });
  t.is(r.code, 0, r.stderr);
  t.is(await containerd.imageDigest(`${REGISTRY_NAME}/demo/multi:1.0`), multi.digest);
  const seen = proxy.lines('request').filter((l) => l.route === 'manifest' && l.repository === 'demo/multi');
  t.true(
    seen.some((l) => l.method === 'HEAD' && l.reference === '1.0'),
    'containerd resolved the tag with HEAD',
  );
  t.true(proxy.lines('request').some((l) => l.route === 'blob' && l.status === 200 && l.upstream === REGISTRY_NAME));
});

test('blobs stream with Range support and the digest header', async (t) => {
  t.is((await get(`/v2/${REGISTRY_NAME}/demo/single/manifests/1.0`)).status, 200);
  const layer = single.blobs[single.blobs.length - 1]!;
  const full = await request(`${proxy.url}/v2/${REGISTRY_NAME}/demo/single/blobs/${layer}`);
  const all = Buffer.from(await full.body.arrayBuffer());
  t.is(full.statusCode, 200);
  t.is(full.headers['docker-content-digest'], layer);
  const part = await request(`${proxy.url}/v2/${REGISTRY_NAME}/demo/single/blobs/${layer}`, {
    headers: { range: 'bytes=5-' },
  });
  const tail = Buffer.from(await part.body.arrayBuffer());
  t.is(part.statusCode, 206);
  t.true(tail.equals(all.subarray(5)));
});

test('HEAD of an admitted blob answers its length and digest, and the proxy stays up', async (t) => {
  t.is((await get(`/v2/${REGISTRY_NAME}/demo/single/manifests/1.0`)).status, 200);
  const layer = single.blobs[single.blobs.length - 1]!;
  for (let i = 0; i < 3; i++) {
    const head = await get(`/v2/${REGISTRY_NAME}/demo/single/blobs/${layer}`, {}, 'HEAD');
    t.is(head.status, 200);
    t.is(head.headers['docker-content-digest'], layer);
    t.true(Number(head.headers['content-length']) > 0);
  }
  await new Promise((r) => setTimeout(r, 100));
  t.is((await get('/v2/')).status, 200);
});

test('tags list paginates with n, last and a Link back to the proxy', async (t) => {
  const first = await get(`/v2/${REGISTRY_NAME}/demo/single/tags/list?n=1`);
  t.is(first.status, 200);
  t.is(JSON.parse(first.body).tags.length, 1);
  t.regex(String(first.headers.link), new RegExp(`^</v2/${REGISTRY_NAME}/demo/single/tags/list\\?n=1&last=`));
});

test('referrers: the tag-schema fallback answers an OCI index, empty when nothing refers, filtered by artifactType', async (t) => {
  const r = await get(`/v2/${REGISTRY_NAME}/demo/single/referrers/${single.digest}`);
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
  t.deepEqual(JSON.parse(r.body).manifests, []);
  const child = multi.manifests[0]!.digest;
  const sbom = await pushReferrer(registry, 'demo/multi', child, {
    artifactType: 'application/spdx+json',
    layerMediaType: 'application/spdx+json',
    layerBytes: Buffer.from('{}'),
  });
  const sig = await pushReferrer(registry, 'demo/multi', child, {
    artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    layerMediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    layerBytes: Buffer.from('{"a":1}'),
  });
  const all = await get(`/v2/${REGISTRY_NAME}/demo/multi/referrers/${child}`);
  t.deepEqual(
    JSON.parse(all.body)
      .manifests.map((m: { digest: string }) => m.digest)
      .sort(),
    [sbom, sig].sort(),
  );
  const filtered = await get(`/v2/${REGISTRY_NAME}/demo/multi/referrers/${child}?artifactType=application/spdx%2Bjson`);
  t.deepEqual(
    JSON.parse(filtered.body).manifests.map((m: { digest: string }) => m.digest),
    [sbom],
  );
  t.is(filtered.headers['oci-filters-applied'], 'artifactType');
});

/** Sends the path exactly as written: URL parsers would resolve `%2e%2e` before it left the client. */
function sendRaw(method: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(proxy.url);
  return new Promise((resolve, reject) => {
    const req = rawRequest({ host: hostname, port, method, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : '{}');
  });
}

/** Upstream round trips the proxy has made so far, from its own metrics. */
async function upstreamCalls(): Promise<number> {
  const text = (await get('/metrics')).body;
  return [...text.matchAll(/^pullgate_upstream_duration_seconds_count\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

test.serial('bad input: each a clear OCI error, and no upstream request', async (t) => {
  const cases: [string, 'GET' | 'PUT' | 'DELETE' | 'POST' | 'PATCH', number, string][] = [
    ['/v2/evil.example.test/x/manifests/1', 'GET', 403, 'DENIED'],
    ['/v2/x/manifests/1?ns=evil.example.test', 'GET', 403, 'DENIED'],
    [`/v2/${REGISTRY_NAME}/Demo/manifests/1`, 'GET', 400, 'NAME_INVALID'],
    [`/v2/${REGISTRY_NAME}/demo%2Fsingle/manifests/1.0`, 'GET', 400, 'NAME_INVALID'],
    [`/v2/${REGISTRY_NAME}/demo/%2e%2e/single/manifests/1.0`, 'GET', 400, 'NAME_INVALID'],
    [`/v2/${REGISTRY_NAME}/demo/single/manifests/md5:abc`, 'GET', 400, 'MANIFEST_INVALID'],
    [`/v2/${REGISTRY_NAME}/demo/single/blobs/sha1:${'a'.repeat(40)}`, 'GET', 400, 'DIGEST_INVALID'],
    [`/v2/${REGISTRY_NAME}/demo/single/manifests/1.0`, 'PUT', 405, 'UNSUPPORTED'],
    [`/v2/${REGISTRY_NAME}/demo/single/blobs/uploads/`, 'POST', 405, 'UNSUPPORTED'],
    [`/v2/${REGISTRY_NAME}/demo/single/manifests/1.0`, 'DELETE', 405, 'UNSUPPORTED'],
  ];
  const fetchesBefore = await upstreamCalls();
  for (const [path, method, status, code] of cases) {
    const res = await sendRaw(method, path);
    const body = JSON.parse(res.body);
    t.is(res.status, status, `${method} ${path}`);
    t.is(body.errors[0].code, code, `${method} ${path}: ${body.errors[0].message}`);
    t.true(typeof body.errors[0].message === 'string' && body.errors[0].message.length > 10);
  }
  t.is(await upstreamCalls(), fetchesBefore, 'no request reached any upstream');
});

test('unknown manifests and blobs keep the upstream error code', async (t) => {
  const m = await get(`/v2/${REGISTRY_NAME}/demo/single/manifests/nope`);
  t.is(m.status, 404);
  t.is(JSON.parse(m.body).errors[0].code, 'MANIFEST_UNKNOWN');
  const b = await get(`/v2/${REGISTRY_NAME}/demo/single/blobs/sha256:${'0'.repeat(64)}`);
  t.is(b.status, 403, 'a blob of no admitted manifest is never fetched');
  t.regex(JSON.parse(b.body).errors[0].message, /not part of an admitted image/);
});

test('unreachable and silent upstreams: 502 and 504 naming the upstream', async (t) => {
  const closedPort = await freePort();
  const silent: Server = createServer(() => {
    /* accept and never answer */
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as { port: number }).port;
  const p = await startTestProxy({
    policy: ALLOW_ALL,
    config: {
      upstreams: [
        { host: 'down.example.test', url: `http://127.0.0.1:${closedPort}`, insecure: true },
        {
          host: 'slow.example.test',
          url: `http://127.0.0.1:${silentPort}`,
          insecure: true,
          timeouts: { headersMs: 300 },
        },
      ],
    },
  });
  t.teardown(async () => {
    await p.close();
    silent.close();
  });
  const down = await request(`${p.url}/v2/down.example.test/a/manifests/1`);
  const downBody = JSON.parse(await down.body.text());
  t.is(down.statusCode, 502);
  t.regex(downBody.errors[0].message, /down\.example\.test.*unreachable/);
  const slow = await request(`${p.url}/v2/slow.example.test/a/manifests/1`);
  const slowBody = JSON.parse(await slow.body.text());
  t.is(slow.statusCode, 504);
  t.regex(slowBody.errors[0].message, /slow\.example\.test did not answer within 300 ms/);
});

test('health, readiness and Prometheus metrics', async (t) => {
  t.is((await get('/healthz')).status, 200);
  t.is((await get('/readyz')).status, 200);
  const m = await get('/metrics');
  t.is(m.status, 200);
  t.regex(m.body, /pullgate_requests_total\{route="manifest",method="GET",status="200"\} \d+/);
  t.regex(
    m.body,
    /pullgate_upstream_duration_seconds_bucket\{le="[^"]+",upstream="registry\.example\.test",op="manifest"\}/,
  );
});
