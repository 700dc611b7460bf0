// Bounded work: a client that leaves stops the upstream read done only for it, every upstream
// operation has an overall deadline, and the listener caps connections and closes slow ones.
import test from 'ava';
import { connect, type Socket } from 'node:net';
import { OCI_MANIFEST, startFakeUpstream, tinyImage, type FakeUpstream } from '../harness/egress-fakes.ts';
import { ALLOW_ALL, startTestProxy, type TestProxy } from './proxy-fixture.ts';

const HOST = 'slow.test';

/** An upstream that sends the manifest one byte per second. */
async function tricklingUpstream(): Promise<FakeUpstream> {
  const { manifest, digest } = tinyImage();
  return startFakeUpstream((_req, res, socket) => {
    res.writeHead(200, {
      'content-type': OCI_MANIFEST,
      'content-length': manifest.length,
      'docker-content-digest': digest,
    });
    let i = 0;
    const timer = setInterval(() => {
      if (i >= manifest.length || socket.destroyed) return clearInterval(timer);
      res.write(manifest.subarray(i, ++i));
    }, 1_000);
    socket.on('close', () => clearInterval(timer));
  });
}

async function proxyFor(
  upstream: FakeUpstream,
  extra: { upstream?: Record<string, unknown>; top?: Record<string, unknown> } = {},
): Promise<TestProxy> {
  return startTestProxy({
    config: { upstreams: [{ host: HOST, url: upstream.url, insecure: true, ...extra.upstream }], ...extra.top },
    policy: ALLOW_ALL,
  });
}

function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref()),
  ]);
}

test('a client that leaves stops the upstream read meant only for it', async (t) => {
  const upstream = await tricklingUpstream();
  const proxy = await proxyFor(upstream);
  try {
    const leftAt = await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`, { signal: AbortSignal.timeout(1_000) })
      .then(() => t.fail('the manifest cannot complete in a second'))
      .catch(() => performance.now());
    t.true(upstream.requests.length >= 1, 'the upstream was asked');
    const closedAt = await within(5_000, upstream.allClosed(), 'upstream socket closed after the client left');
    const lag = Math.max(0, closedAt - leftAt);
    t.log(`upstream read ended ${Math.round(lag)} ms after the client left`);
    t.true(lag < 2_000, `ended ${lag} ms after`);
    t.is((await fetch(`${proxy.url}/v2/`)).status, 200);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('an upstream operation ends at its overall deadline (timeouts.totalMs) even while bytes trickle in', async (t) => {
  const upstream = await tricklingUpstream();
  const proxy = await proxyFor(upstream, { upstream: { timeouts: { headersMs: 1_000, totalMs: 2_000 } } });
  try {
    const started = performance.now();
    const res = await fetch(`${proxy.url}/v2/${HOST}/app/manifests/1.0`, { signal: AbortSignal.timeout(20_000) });
    const ms = performance.now() - started;
    const body = await res.text();
    t.log(`answered ${res.status} after ${Math.round(ms)} ms`);
    t.is(res.status, 504);
    t.regex(body, /within 2000 ms \(timeouts\.totalMs\)/);
    t.true(ms >= 1_900 && ms < 5_000, `${ms} ms`);
    await within(3_000, upstream.allClosed(), 'upstream socket closed at the deadline');
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

function open(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: hostname, port: Number(port) }, () => resolve(s));
    s.on('error', reject);
  });
}

function closed(s: Socket): Promise<number> {
  return s.destroyed || s.readyState === 'closed'
    ? Promise.resolve(performance.now())
    : new Promise((resolve) => s.once('close', () => resolve(performance.now())));
}

test('the listener caps connections (limits.maxConnections) and closes slowloris and idle sockets (limits.headersTimeoutMs)', async (t) => {
  const upstream = await tricklingUpstream();
  const proxy = await proxyFor(upstream, { top: { limits: { maxConnections: 10, headersTimeoutMs: 1_000 } } });
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 30; i++) {
      const s = await open(proxy.url);
      s.on('error', () => undefined);
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const open10 = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    t.log(`${open10} of 30 sockets still open past the cap of 10`);
    t.true(open10 <= 10, `${open10} open`);
    // The ones kept are idle: closed once the header timeout passes (checked every quarter of it).
    const started = performance.now();
    const ends = await within(8_000, Promise.all(sockets.map(closed)), 'idle sockets closed');
    t.log(`idle sockets closed after ${Math.round(Math.max(...ends) - started)} ms`);
    for (const s of sockets) s.destroy();

    // Slowloris: a header line every 200 ms never completes the request.
    const slow = await open(proxy.url);
    slow.on('error', () => undefined);
    slow.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.writable && slow.write('X-Slow: 1\r\n'), 200);
    const begun = performance.now();
    const end = await within(4_000, closed(slow), 'slowloris socket closed').finally(() => clearInterval(drip));
    t.log(`slowloris socket closed after ${Math.round(end - begun)} ms`);
    t.true(end - begun >= 900, 'not before the header timeout');
    t.is((await fetch(`${proxy.url}/v2/`)).status, 200, 'the proxy answers once the flood is gone');
  } finally {
    for (const s of sockets) s.destroy();
    await proxy.close();
    await upstream.close();
  }
});
