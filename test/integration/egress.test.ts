// Outbound connections only where intended: blob redirects and token realms that point at internal
// addresses are refused before any connection (a canary listener counts them), credentials go only
// to allowlisted realms, and what an internal service would answer never reaches the client.
import test from 'ava';
import type { ServerResponse } from 'node:http';
import {
  OCI_MANIFEST,
  startCanary,
  startFakeUpstream,
  tinyImage,
  type Canary,
  type FakeUpstream,
} from '../harness/egress-fakes.ts';
import { ALLOW_ALL, startTestProxy, type TestProxy } from './proxy-fixture.ts';

const HOST = 'hostile.test';

interface Front {
  upstream: FakeUpstream;
  image: ReturnType<typeof tinyImage>;
}

/** An upstream that serves one image by tag and answers its layer (and any challenge) as told. */
async function front(opts: {
  blob?: (res: ServerResponse) => void;
  /** A Bearer challenge for every request without a token. */
  realm?: string;
}): Promise<Front> {
  const image = tinyImage();
  const upstream = await startFakeUpstream((req, res) => {
    if (opts.realm && !req.headers.authorization?.startsWith('Bearer ')) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${opts.realm}",service="hostile"` }).end();
      return;
    }
    if (req.url === '/v2/app/manifests/1.0' || req.url === `/v2/app/manifests/${image.digest}`) {
      res.writeHead(200, {
        'content-type': OCI_MANIFEST,
        'content-length': image.manifest.length,
        'docker-content-digest': image.digest,
      });
      res.end(req.method === 'HEAD' ? undefined : image.manifest);
      return;
    }
    if (req.url === `/v2/app/blobs/${image.layerDigest}` && opts.blob) return opts.blob(res);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  });
  return { upstream, image };
}

async function proxyFor(upstream: FakeUpstream, extra: Record<string, unknown> = {}): Promise<TestProxy> {
  return startTestProxy({
    config: { upstreams: [{ host: HOST, url: upstream.url, insecure: true, ...extra }] },
    policy: ALLOW_ALL,
  });
}

async function stillAnswers(t: { is: (a: unknown, b: unknown, m?: string) => void }, proxy: TestProxy): Promise<void> {
  const res = await fetch(`${proxy.url}/v2/`);
  t.is(res.status, 200, 'the proxy still answers /v2/');
}

const redirectTargets = (canary: Canary): [string, string][] => [
  ['loopback address', `${canary.url}/blob`],
  ['a name resolving to loopback (rebinding)', `http://localhost:${canary.port}/blob`],
  ['IPv4-mapped IPv6 loopback', `http://[::ffff:127.0.0.1]:${canary.port}/blob`],
  ['a decimal-encoded loopback address', `http://2130706433:${canary.port}/blob`],
  ['cloud metadata', 'http://169.254.169.254/latest/meta-data/'],
];

test('blob redirects to internal addresses are refused before connecting; the client never sees the answer', async (t) => {
  const canary = await startCanary();
  let location = '';
  const { upstream, image } = await front({ blob: (res) => res.writeHead(307, { location }).end() });
  const proxy = await proxyFor(upstream);
  try {
    const m = await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`, { headers: { accept: OCI_MANIFEST } });
    t.is(m.status, 200, 'the image is admitted');
    for (const [what, target] of redirectTargets(canary)) {
      location = target;
      const started = performance.now();
      const res = await fetch(`${proxy.url}/v2/${HOST}/app/blobs/${image.layerDigest}`, {
        headers: { range: 'bytes=0-' },
      });
      const body = await res.text();
      t.is(res.status, 502, what);
      t.false(body.includes(canary.secret), `${what}: the canary's answer is not echoed`);
      t.regex(body, /refused by the egress policy or unreachable/, what);
      t.true(performance.now() - started < 5_000, `${what}: refused at once, not after a connect timeout`);
      t.is(canary.connections(), 0, `${what}: no connection reached the canary`);
    }
    const logged = proxy.lines('request').filter((l) => l.route === 'blob' && l.status === 502);
    t.true(
      logged.some((l) => /loopback/.test(String(l.cause))),
      'the log has the detail the client does not',
    );
    await stillAnswers(t, proxy);
  } finally {
    await proxy.close();
    await upstream.close();
    await canary.close();
  }
});

test('an internal range allowlisted for the upstream is followed (egress.allowCidrs)', async (t) => {
  const canary = await startCanary();
  const { upstream, image } = await front({
    blob: (res) => res.writeHead(307, { location: `${canary.url}/blob` }).end(),
  });
  const proxy = await proxyFor(upstream, { egress: { allowCidrs: ['127.0.0.0/8'] } });
  try {
    await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`).then((r) => r.arrayBuffer());
    const res = await fetch(`${proxy.url}/v2/${HOST}/app/blobs/${image.layerDigest}`);
    // The stream is cut before its last byte: what came back does not hash to the digest.
    const body = await res.text().catch(() => '');
    t.is(canary.connections(), 1, 'the allowlisted target was connected to');
    t.false(body.includes(canary.secret), 'content that does not hash to the digest is still not served');
    await stillAnswers(t, proxy);
  } finally {
    await proxy.close();
    await upstream.close();
    await canary.close();
  }
});

test('a token realm on an internal address is refused; its token is never fetched or forwarded', async (t) => {
  const canary = await startCanary();
  for (const realm of [`${canary.url}/token`, `http://localhost:${canary.port}/token`]) {
    const { upstream } = await front({ realm });
    const proxy = await proxyFor(upstream, { username: 'pullgate', password: 'upstream-secret' });
    try {
      const res = await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`);
      const body = await res.text();
      t.is(res.status, 502, realm);
      t.false(body.includes(canary.secret), realm);
      t.regex(body, /token realm it cannot use/, realm);
      t.is(canary.connections(), 0, `${realm}: no connection reached the canary`);
      t.false(
        upstream.requests.some((r) => r.authorization?.includes(canary.secret)),
        'no internal token was sent upstream',
      );
      await stillAnswers(t, proxy);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  }
  await canary.close();
});

test('configured credentials go only to realms allowlisted for the upstream (tokenRealms)', async (t) => {
  const realmServer = await startFakeUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"realm-token"}');
  });
  // Another host than the upstream's origin (another port): reachable (allowHosts), not trusted with credentials.
  const realm = `${realmServer.url}/token`;
  const creds = { username: 'pullgate', password: 'upstream-secret' };
  const basic = `Basic ${Buffer.from('pullgate:upstream-secret').toString('base64')}`;
  for (const [extra, expected] of [
    [{ egress: { allowHosts: [realmServer.host] } }, undefined],
    [{ tokenRealms: [realmServer.host] }, basic],
  ] as const) {
    const { upstream } = await front({ realm });
    const proxy = await proxyFor(upstream, { ...creds, ...extra });
    try {
      realmServer.requests.length = 0;
      const res = await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`);
      t.is(res.status, 200, JSON.stringify(extra));
      t.is(realmServer.requests.length, 1);
      t.is(realmServer.requests[0]?.authorization, expected, JSON.stringify(extra));
      t.true(upstream.requests.some((r) => r.authorization === 'Bearer realm-token'));
    } finally {
      await proxy.close();
      await upstream.close();
    }
  }
  await realmServer.close();
});

test('an upstream error from a redirect target is not echoed, only its status', async (t) => {
  const target = await startFakeUpstream((_req, res) => {
    res
      .writeHead(404, { 'content-type': 'application/json' })
      .end('{"errors":[{"code":"BLOB_UNKNOWN","message":"INTERNAL-DETAIL"}]}');
  });
  const { upstream, image } = await front({
    blob: (res) => res.writeHead(307, { location: `${target.url}/x` }).end(),
  });
  const proxy = await proxyFor(upstream, { egress: { allowHosts: [target.host] } });
  try {
    await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`).then((r) => r.arrayBuffer());
    const res = await fetch(`${proxy.url}/v2/${HOST}/app/blobs/${image.layerDigest}`);
    const body = await res.text();
    t.is(res.status, 404);
    t.false(body.includes('INTERNAL-DETAIL'), body);
  } finally {
    await proxy.close();
    await upstream.close();
    await target.close();
  }
});
