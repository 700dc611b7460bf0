// Issue 9: a sweep of upstream misbehaviours against a real `pullgate serve` child process. For each
// behaviour the request a client would send must get an OCI error or a correct answer (never wrong
// bytes), within a bound of time and memory, and the proxy must still answer /v2/ afterwards. The
// figures (time, peak RSS, worst /healthz latency while the case ran) are logged per case.
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { generateKey } from '../harness/cosign.ts';
import {
  b,
  deeplyNested,
  imageManifest,
  OCI_INDEX,
  OCI_MANIFEST,
  sha256,
  startCanary,
  startHostileUpstream,
  type Behaviour,
  type Canary,
  type HostileUpstream,
} from '../harness/hostile-upstream.ts';
import { startPullgate, type PullgateProcess } from '../harness/pullgate-process.ts';
import { ALLOW_ALL } from './proxy-fixture.ts';

const REG = 'hostile.test';
const TIMEOUTS = { connectMs: 2_000, headersMs: 3_000, bodyMs: 3_000, totalMs: 6_000, blobTotalMs: 6_000 };
/** The most a case may take: the upstream timeouts above plus a margin for a loaded machine. */
const CASE_MS = 12_000;
/** The most RSS a single hostile request may add to the proxy. */
const RSS_GROWTH_MIB = 160;

let up: HostileUpstream;
let canary: Canary;
let proxy: PullgateProcess;

test.before(async () => {
  up = await startHostileUpstream();
  canary = await startCanary();
  proxy = await startPullgate(
    {
      upstreams: [{ host: REG, url: up.url, insecure: true, timeouts: TIMEOUTS }],
      limits: { clientWriteTimeoutMs: 5_000 },
      tagRecheckSeconds: 0,
    },
    ALLOW_ALL,
  );
});

test.after.always(async () => {
  await proxy?.stop();
  await up?.close();
  await canary?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body was cut short (connection reset or closed before its declared end). */
  cut: boolean;
  ms: number;
}

async function send(path: string, opts: { method?: 'GET' | 'HEAD'; headers?: Record<string, string> } = {}) {
  const started = performance.now();
  const res = await request(`${proxy.url}${path}`, {
    method: opts.method ?? 'GET',
    headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}`, ...opts.headers },
    headersTimeout: CASE_MS,
    bodyTimeout: CASE_MS,
    signal: AbortSignal.timeout(CASE_MS + 2_000),
  });
  const chunks: Buffer[] = [];
  let cut = false;
  try {
    for await (const c of res.body) chunks.push(c as Buffer);
  } catch {
    cut = true;
  }
  return {
    status: res.statusCode,
    headers: res.headers,
    body: Buffer.concat(chunks),
    cut,
    ms: performance.now() - started,
  } satisfies Answer;
}

/** The worst /healthz latency while `work` runs: what a stalled event loop would show. */
async function watchingHealth<T>(work: Promise<T>): Promise<{ result: T; worstMs: number }> {
  let worstMs = 0;
  let done = false;
  const watcher = (async () => {
    for (let i = 0; !done && i < 2_000; i++) {
      const started = performance.now();
      const res = await request(`${proxy.url}/healthz`, { headersTimeout: CASE_MS, bodyTimeout: CASE_MS });
      await res.body.dump();
      worstMs = Math.max(worstMs, performance.now() - started);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  try {
    return { result: await work, worstMs };
  } finally {
    done = true;
    await watcher.catch(() => undefined);
  }
}

/** The OCI error body of an answer, or a failed assertion saying what came instead. */
function ociError(t: ExecutionContext, a: Answer): { code: string; message: string } | undefined {
  try {
    const doc = JSON.parse(a.body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const e = doc.errors?.[0];
    if (typeof e?.code === 'string' && typeof e.message === 'string') return { code: e.code, message: e.message };
  } catch {
    // reported below
  }
  t.fail(`expected an OCI error body, got ${a.status} ${a.body.subarray(0, 200).toString('utf8')}`);
  return undefined;
}

interface Expect {
  /** Statuses accepted (an error must carry an OCI error body, a HEAD none). */
  status: number[];
  /** For a 200: the exact bytes a correct answer has. */
  bytes?: Buffer;
  /** A pattern the error message must match. */
  message?: RegExp;
}

/**
 * Runs one hostile exchange and checks the invariants every case shares: an OCI error or the exact
 * correct bytes, bounded time and memory, and the proxy alive and answering /v2/ afterwards.
 */
async function hostile(
  t: ExecutionContext,
  path: string,
  expect: Expect,
  opts: { method?: 'GET' | 'HEAD'; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const before = proxy.rss().nowMiB;
  proxy.resetPeak();
  const { result: a, worstMs } = await watchingHealth(send(path, opts));
  const { peakMiB } = proxy.rss();
  t.log(
    `${opts.method ?? 'GET'} ${path.slice(0, 90)} → ${a.status}${a.cut ? ' (cut)' : ''} in ${Math.round(a.ms)} ms; ` +
      `peak RSS ${peakMiB.toFixed(0)} MiB (before ${before.toFixed(0)}); worst /healthz ${worstMs.toFixed(0)} ms`,
  );
  t.true(proxy.alive(), 'the proxy process is still running');
  t.true(expect.status.includes(a.status), `status ${a.status}, expected one of ${expect.status.join(', ')}`);
  t.true(a.ms < CASE_MS, `answered within ${CASE_MS} ms (took ${Math.round(a.ms)})`);
  t.true(peakMiB - before < RSS_GROWTH_MIB, `RSS grew ${(peakMiB - before).toFixed(0)} MiB, bound ${RSS_GROWTH_MIB}`);
  if (a.status >= 400 && opts.method !== 'HEAD') {
    const e = ociError(t, a);
    if (e && expect.message) t.regex(e.message, expect.message);
  }
  if (a.status === 200 && expect.bytes && opts.method !== 'HEAD') {
    t.false(a.cut, 'a 200 answer is complete');
    t.true(a.body.equals(expect.bytes), 'the bytes served are the correct ones');
  }
  const base = await send('/v2/');
  t.is(base.status, 200, 'the proxy still answers /v2/');
  return a;
}

// ---- fixtures -------------------------------------------------------------------------------------

let seq = 0;
/** A repository path of its own for each case, so pins and verdicts of one never answer another. */
function repo(name: string): string {
  return `h/${name}-${++seq}`;
}

function manifestOf(seed: string): Buffer {
  const layer = Buffer.from(`layer ${seed}`);
  const config = Buffer.from(`{"seed":"${seed}"}`);
  return Buffer.from(
    JSON.stringify(
      imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]),
    ),
  );
}

/** Route a manifest path of a repository. */
function onManifest(r: string, ref: string, behaviour: Behaviour, method?: string): string {
  up.on(`/v2/${r}/manifests/${ref}`, behaviour, method);
  return `/v2/${REG}/${r}/manifests/${ref}`;
}

// ---- manifests ------------------------------------------------------------------------------------

test.serial('a well-behaved manifest is served exactly (the sweep itself works)', async (t) => {
  const r = repo('ok');
  const m = manifestOf('ok');
  await hostile(t, onManifest(r, '1.0', b.json(m)), { status: [200], bytes: m });
});

const MANIFEST_CASES: {
  name: string;
  behaviour: (m: Buffer) => Behaviour;
  expect: Expect;
  byDigest?: boolean;
  /** The behaviour serves a document of its own rather than the case's manifest. */
  own?: boolean;
}[] = [
  { name: 'slow body (2 KiB/s)', behaviour: (m) => b.slow(m, 2_048), expect: { status: [200] } },
  {
    name: 'stalled body after the headers',
    behaviour: (m) => b.stall(m, 10),
    expect: { status: [502, 504], message: /did not answer|unreachable/ },
  },
  { name: 'no answer at all', behaviour: () => b.silent(), expect: { status: [504], message: /did not answer/ } },
  { name: 'reset mid-body', behaviour: (m) => b.reset(m, 20), expect: { status: [502] } },
  {
    name: 'content that does not hash to the digest asked for',
    behaviour: () => b.json(manifestOf('other')),
    expect: { status: [502], message: /does not hash/ },
    byDigest: true,
  },
  {
    name: 'a Docker-Content-Digest that is not the content',
    behaviour: (m) => b.json(m, { digest: sha256('something else') }),
    expect: { status: [502], message: /claims/ },
  },
  {
    name: 'Content-Length shorter than the body',
    behaviour: (m) => b.lengthLie(m, 10),
    expect: { status: [502] },
  },
  {
    name: 'Content-Length longer than the body',
    behaviour: (m) => b.lengthLie(m, m.length + 100),
    expect: { status: [502] },
  },
  {
    name: '100 MiB manifest with its Content-Length',
    behaviour: () => b.huge(100 * 1024 * 1024, (_o, n) => Buffer.alloc(n, 0x20)),
    expect: { status: [502], message: /larger than/ },
  },
  {
    name: '100 MiB manifest, chunked',
    behaviour: () => b.hugeChunked(100 * 1024 * 1024, (_o, n) => Buffer.alloc(n, 0x20)),
    expect: { status: [502], message: /larger than/ },
  },
  {
    name: 'JSON nested 500,000 levels deep',
    behaviour: () => b.json(deeplyNested(500_000)),
    expect: { status: [502], message: /manifest/ },
  },
  { name: 'invalid JSON', behaviour: () => b.json('{"schemaVersion": 2, "layers": ['), expect: { status: [502] } },
  { name: 'JSON that is not an object', behaviour: () => b.json('[2]'), expect: { status: [502] } },
  { name: 'JSON null', behaviour: () => b.json('null'), expect: { status: [502] } },
  {
    name: 'layers that are not descriptors',
    own: true,
    behaviour: () =>
      b.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: 7, layers: [null, 'x', { digest: 5 }] }),
    expect: { status: [200, 502] },
  },
  {
    name: 'an index whose manifests are not descriptors',
    own: true,
    behaviour: () =>
      b.json(
        { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [null, 1, { digest: {} }] },
        {
          contentType: OCI_INDEX,
        },
      ),
    expect: { status: [200, 403, 502] },
  },
  {
    name: 'an index whose manifests is not a list',
    behaviour: () => b.json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: true }, { contentType: OCI_INDEX }),
    expect: { status: [502], message: /not a list/ },
  },
  { name: '206 to a plain GET', behaviour: (m) => b.json(m, { status: 206 }), expect: { status: [502] } },
  { name: 'an HTTP/1.0 answer without Content-Length', behaviour: (m) => b.http10(m), expect: { status: [200, 502] } },
  { name: 'chunked encoding garbage', behaviour: () => b.chunkedGarbage(), expect: { status: [502] } },
  { name: 'not HTTP at all', behaviour: () => b.garbage(), expect: { status: [502] } },
  { name: 'gzip Content-Encoding', behaviour: (m) => b.gzip(m), expect: { status: [200, 502] } },
  {
    name: '500 with a huge body',
    behaviour: () => b.huge(50 * 1024 * 1024, (_o, n) => Buffer.alloc(n, 0x41), { status: 500 }),
    expect: { status: [502] },
  },
  {
    name: '429 with a nonsense Retry-After',
    behaviour: () =>
      b.status(
        429,
        { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] },
        {
          'retry-after': '\u0000'.replace('\u0000', 'x'.repeat(5_000)),
        },
      ),
    expect: { status: [429] },
  },
  {
    name: 'an OCI error whose message is 1 MiB',
    behaviour: () => b.status(404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'm'.repeat(1024 * 1024) }] }),
    expect: { status: [404] },
  },
  {
    name: 'redirect loop on a manifest',
    behaviour: () => b.redirect('/v2/loop/manifests/1.0'),
    expect: { status: [502, 404] },
  },
];

for (const c of MANIFEST_CASES) {
  test.serial(`manifest by ${c.byDigest ? 'digest' : 'tag'}: ${c.name}`, async (t) => {
    const r = repo('m');
    const m = manifestOf(c.name);
    const ref = c.byDigest ? sha256(m) : '1.0';
    const path = onManifest(r, ref, c.behaviour(m));
    const a = await hostile(t, path, c.own ? c.expect : { ...c.expect, bytes: m });
    if (a.status === 200) t.is(a.headers['docker-content-digest'], sha256(a.body), 'the digest header is the bytes');
  });
}

test.serial('the HEAD re-checking a pinned tag misbehaves: pulls go on being answered from the pin', async (t) => {
  const behaviours: [string, (m: Buffer) => Behaviour][] = [
    ['stall', () => b.silent()],
    ['reset', (m) => b.reset(m, 0)],
    ['sha512 digest', (m) => b.json(m, { digest: `sha512:${'a'.repeat(128)}` })],
    ['garbage digest', (m) => b.json(m, { digest: 'sha256:../../etc' })],
    ['no digest', (m) => b.json(m, { digest: null })],
    ['not http', () => b.garbage()],
    ['500', () => b.status(500, 'x'.repeat(100_000))],
  ];
  for (const [name, behaviour] of behaviours) {
    const r = repo(`head-${name.replace(/\W/g, '')}`);
    const m = manifestOf(name);
    up.on(`/v2/${r}/manifests/1.0`, b.json(m));
    const path = `/v2/${REG}/${r}/manifests/1.0`;
    t.is((await send(path)).status, 200, `${name}: pinned`);
    up.on(`/v2/${r}/manifests/1.0`, behaviour(m), 'HEAD');
    // tagRecheckSeconds 0: every pull of the pinned tag re-checks it upstream in the background.
    for (const method of ['GET', 'HEAD'] as const) {
      const a = await hostile(t, path, { status: [200], bytes: m }, { method });
      t.is(a.headers['docker-content-digest'], sha256(m), `${name}: the pinned digest`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // The stalled re-checks time out (headersMs) in the background; the proxy is still there after.
  await new Promise((r) => setTimeout(r, TIMEOUTS.headersMs + 500));
  t.true(proxy.alive());
  t.is((await send('/v2/')).status, 200);
});

test.serial('a manifest over a small manifestMaxBytes is refused and the process lives', async (t) => {
  const small = await startPullgate(
    {
      upstreams: [{ host: REG, url: up.url, insecure: true, timeouts: TIMEOUTS }],
      limits: { manifestMaxBytes: 1024 },
    },
    ALLOW_ALL,
  );
  try {
    const r = repo('small');
    const big = Buffer.from(
      JSON.stringify({ ...imageManifest({ digest: sha256('c'), size: 1 }, []), pad: 'x'.repeat(4096) }),
    );
    up.on(`/v2/${r}/manifests/1.0`, b.json(big));
    up.on(
      `/v2/${r}/manifests/chunked`,
      b.hugeChunked(big.length, (o, n) => big.subarray(o, o + n)),
    );
    for (const ref of ['1.0', 'chunked']) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await request(`${small.url}/v2/${REG}/${r}/manifests/${ref}`, {
          method,
          headers: { accept: OCI_MANIFEST },
          headersTimeout: CASE_MS,
        });
        const text = await res.body.text();
        t.is(res.statusCode, 502, `${method} ${ref}: ${text}`);
        if (method === 'GET') t.regex(text, /manifestMaxBytes/);
        t.true(small.alive(), `${method} ${ref}: the proxy process is still running`);
      }
    }
  } finally {
    await small.stop();
  }
});

// ---- blobs ---------------------------------------------------------------------------------------

/**
 * An admitted manifest listing one layer of `content`'s digest and size, so that the proxy permits
 * the blob; returns the blob path a client would ask for.
 */
async function admittedLayer(
  t: ExecutionContext,
  content: Buffer,
  name: string,
): Promise<{ r: string; path: string; digest: string }> {
  const r = repo(`blob-${name}`);
  const config = Buffer.from(`{"blob":"${name}"}`);
  const digest = sha256(content);
  const m = Buffer.from(
    JSON.stringify(imageManifest({ digest: sha256(config), size: config.length }, [{ digest, size: content.length }])),
  );
  up.on(`/v2/${r}/manifests/1.0`, b.json(m));
  const pulled = await send(`/v2/${REG}/${r}/manifests/1.0`);
  t.is(pulled.status, 200, 'the manifest listing the blob is admitted');
  return { r, path: `/v2/${REG}/${r}/blobs/${digest}`, digest };
}

const BLOB = Buffer.from(createHash('sha512').update('blob').digest('hex').repeat(2_000)); // 256 KB

const BLOB_CASES: {
  name: string;
  behaviour: (content: Buffer, digest: string) => Behaviour;
  expect: Expect;
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
}[] = [
  {
    name: 'a correct blob',
    behaviour: (c) => b.json(c, { contentType: 'application/octet-stream' }),
    expect: { status: [200] },
  },
  {
    name: 'content that does not hash to its digest',
    behaviour: (c) => b.json(Buffer.from(c).fill(0x78, 100, 200), { contentType: 'application/octet-stream' }),
    expect: { status: [200, 502] },
  },
  {
    name: 'content one byte longer than the digest covers',
    behaviour: (c) => b.json(Buffer.concat([c, Buffer.from('!')]), { contentType: 'application/octet-stream' }),
    expect: { status: [200, 502] },
  },
  { name: 'stalled body', behaviour: (c) => b.stall(c, 1000), expect: { status: [200, 502, 504] } },
  { name: 'no answer', behaviour: () => b.silent(), expect: { status: [502, 504] } },
  { name: 'reset mid-body', behaviour: (c) => b.reset(c, 100_000), expect: { status: [200, 502] } },
  { name: 'Content-Length shorter', behaviour: (c) => b.lengthLie(c, 1000), expect: { status: [200, 502] } },
  { name: 'Content-Length longer', behaviour: (c) => b.lengthLie(c, c.length + 1000), expect: { status: [200, 502] } },
  {
    name: '206 to a plain GET',
    behaviour: (c) => b.json(c.subarray(0, 100), { status: 206 }),
    expect: { status: [502] },
  },
  {
    name: '200 to a Range request',
    behaviour: (c) => b.json(c, { contentType: 'application/octet-stream' }),
    expect: { status: [206] },
    headers: { range: 'bytes=100-199' },
  },
  {
    name: '416 with a body',
    behaviour: () => b.status(416, 'x'.repeat(100_000), { 'content-range': 'bytes */5' }),
    expect: { status: [502] },
    headers: { range: 'bytes=0-' },
  },
  {
    name: 'redirect to another repository that has no such blob',
    behaviour: (_c, d) => b.redirect(`/v2/loop/blobs/${d}`),
    expect: { status: [404, 502] },
  },
  {
    name: 'redirect to itself',
    behaviour: () => (req, res) => b.redirect(req.url ?? '/')(req, res),
    expect: { status: [502], message: /more than/ },
  },
  { name: 'redirect without Location', behaviour: () => b.status(302), expect: { status: [502] } },
  { name: 'redirect to file:', behaviour: () => b.redirect('file:///etc/passwd'), expect: { status: [502] } },
  {
    name: 'redirect to a refused port',
    behaviour: () => b.redirect('http://127.0.0.1:1/x'),
    expect: { status: [502] },
  },
  { name: 'redirect to a malformed URL', behaviour: () => b.redirect('http://[::1'), expect: { status: [502] } },
  { name: 'chunked garbage', behaviour: () => b.chunkedGarbage(), expect: { status: [200, 502] } },
  {
    name: 'gzip Content-Encoding',
    behaviour: (c) => b.gzip(c, { contentType: 'application/octet-stream' }),
    expect: { status: [200, 502] },
  },
  {
    name: 'HEAD with no Content-Length',
    behaviour: () => b.status(200, '', { 'content-length': '' }),
    expect: { status: [200, 502] },
    method: 'HEAD',
  },
];

for (const c of BLOB_CASES) {
  test.serial(`blob: ${c.name}`, async (t) => {
    // A blob of its own per case: the cache is content-addressed, and a cached blob never asks the upstream.
    const blob = Buffer.concat([BLOB, Buffer.from(c.name)]);
    const { r, path, digest } = await admittedLayer(t, blob, 'b');
    up.on(`/v2/${r}/blobs/${digest}`, c.behaviour(blob, digest));
    const a = await hostile(t, path, c.expect, { method: c.method, headers: c.headers });
    if (a.status === 200 && c.method !== 'HEAD') {
      // The one thing never allowed: the client holding every byte of content that is not the blob.
      t.false(!a.cut && !a.body.equals(blob), 'a complete 200 body is the blob itself');
      if (!a.cut) t.is(sha256(a.body), digest);
    }
    if (a.status === 206) t.true(a.body.equals(blob.subarray(100, 200)), 'the range served is of the verified blob');
  });
}

// ---- tags, referrers, auth -----------------------------------------------------------------------

test.serial('a tag list of a million entries', async (t) => {
  const r = repo('tags');
  // Built before the case and streamed in slices: generating it byte by byte as it is sent kept
  // this process's loop (and so the upstream) slow enough on a loaded machine to hit totalMs.
  const tags = Array.from({ length: 1_000_000 }, (_, i) => `t${String(i).padStart(7, '0')}`);
  const doc = Buffer.from(JSON.stringify({ name: r, tags }));
  up.on(
    `/v2/${r}/tags/list`,
    b.huge(doc.length, (off, n) => doc.subarray(off, off + n), { contentType: 'application/json' }),
  );
  // A million valid tags is over limits.tagListMaxTags (100,000): refused, naming the key, never cut.
  await hostile(t, `/v2/${REG}/${r}/tags/list?n=10`, { status: [502], message: /limits\.tagListMaxTags/ });
});

/** A tag list document of exactly `size` bytes: `tags` first, then invalid entries ("." is no tag) as padding. */
function tagListOf(tags: string[], size: number): Buffer {
  const head = `{"name":"x","tags":${JSON.stringify(tags).slice(0, -1)}`;
  const room = size - head.length - 2;
  if (room < 0) throw new Error('the tags do not fit');
  const pads = Math.floor(room / 4); // `,"."` each
  const filler = ',"."'.repeat(pads) + ' '.repeat(room - pads * 4);
  return Buffer.from(`${head}${filler}]}`);
}

const LIST_MAX = 16 * 1024 * 1024;
/** The most RSS one tag list of the proxy's largest size (16 MiB) may add. */
const TAG_LIST_RSS_MIB = 64;

test.serial(
  'a 16 MiB tag list of short tags (1.4 million): refused over limits.tagListMaxTags, RSS bounded',
  async (t) => {
    const r = repo('tags-max');
    const tags = Array.from({ length: 1_400_000 }, (_, i) => `t${i}`);
    const doc = tagListOf(tags, LIST_MAX);
    up.on(`/v2/${r}/tags/list`, b.json(doc, { contentType: 'application/json' }));
    const before = proxy.rss().nowMiB;
    proxy.resetPeak();
    const a = await hostile(t, `/v2/${REG}/${r}/tags/list?n=10`, { status: [502], message: /limits\.tagListMaxTags/ });
    const growth = proxy.rss().peakMiB - before;
    t.log(
      `16 MiB list, ${tags.length} tags: RSS before ${before.toFixed(0)} MiB, peak growth ${growth.toFixed(0)} MiB`,
    );
    t.true(growth < TAG_LIST_RSS_MIB, `RSS grew ${growth.toFixed(0)} MiB, bound ${TAG_LIST_RSS_MIB}`);
    t.regex(a.body.toString('utf8'), /SIZE_INVALID/);
  },
);

test.serial('a 16 MiB tag list at limits.tagListMaxTags (100,000 longest tags): paged, RSS bounded', async (t) => {
  const r = repo('tags-cap');
  const tags = Array.from({ length: 100_000 }, (_, i) => `${String(99_999 - i).padStart(6, '0')}${'x'.repeat(122)}`);
  const doc = tagListOf(tags, LIST_MAX);
  up.on(`/v2/${r}/tags/list`, b.json(doc, { contentType: 'application/json' }));
  const before = proxy.rss().nowMiB;
  proxy.resetPeak();
  const a = await hostile(t, `/v2/${REG}/${r}/tags/list?n=3&last=${tags[50_000]}`, { status: [200] });
  const growth = proxy.rss().peakMiB - before;
  t.log(
    `16 MiB list, 100,000 tags of 128 bytes: RSS before ${before.toFixed(0)} MiB, peak growth ${growth.toFixed(0)} MiB`,
  );
  t.true(growth < TAG_LIST_RSS_MIB, `RSS grew ${growth.toFixed(0)} MiB, bound ${TAG_LIST_RSS_MIB}`);
  const page = JSON.parse(a.body.toString('utf8')) as { tags: string[] };
  t.deepEqual(page.tags, [tags[49_999], tags[49_998], tags[49_997]], 'the page after `last`, in lexical order');
});

test.serial('a referrers index of 100,000 entries', async (t) => {
  const r = repo('referrers');
  const subject = sha256('subject');
  const one = {
    mediaType: OCI_MANIFEST,
    digest: sha256('x'),
    size: 100,
    artifactType: 'application/vnd.example',
  };
  const doc = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: Array(100_000).fill(one) }),
  );
  up.on(`/v2/${r}/referrers/${subject}`, b.json(doc, { contentType: OCI_INDEX }));
  t.log(`referrers index: ${(doc.length / 1024 / 1024).toFixed(1)} MiB`);
  await hostile(t, `/v2/${REG}/${r}/referrers/${subject}`, { status: [200, 502] });
});

test.serial('a referrers answer that is not an index, and one nested deeply', async (t) => {
  for (const body of ['{"manifests": 5}', '[]', 'not json', deeplyNested(200_000).toString()]) {
    const r = repo('referrers-bad');
    const subject = sha256(body);
    up.on(`/v2/${r}/referrers/${subject}`, b.json(body, { contentType: OCI_INDEX }));
    await hostile(t, `/v2/${REG}/${r}/referrers/${subject}`, { status: [502] });
  }
});

test.serial('a referrers index whose entries are not descriptors: only the descriptors are listed', async (t) => {
  const valid = { mediaType: OCI_MANIFEST, digest: sha256('referrer'), size: 10, artifactType: 'application/x' };
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [null, 5, 'x', { digest: {} }, { digest: 'nope' }, valid],
  };
  for (const query of ['', '?artifactType=application/x']) {
    const r = repo('referrers-junk');
    const subject = sha256(`junk${query}`);
    up.on(`/v2/${r}/referrers/${subject}`, b.json(doc, { contentType: OCI_INDEX }));
    const a = await hostile(t, `/v2/${REG}/${r}/referrers/${subject}${query}`, { status: [200] });
    t.deepEqual((JSON.parse(a.body.toString('utf8')) as { manifests: unknown[] }).manifests, [valid]);
  }
});

const CHALLENGES = [
  'Bearer',
  'Bearer realm=',
  'Bearer realm=""',
  'Bearer realm="http://[::1"',
  'Bearer realm="javascript:alert(1)"',
  'Bearer realm="file:///etc/passwd"',
  'Bearer realm="http://127.0.0.1:1/token"',
  'Bearer ,,,,,,,,',
  'Bearer realm="unterminated',
  `Bearer realm="${'x'.repeat(60_000)}"`,
  'Basic',
  'Negotiate abc',
  '=====',
  '\u00ff\u00fe',
];

test.serial('401 with malformed WWW-Authenticate challenges', async (t) => {
  for (const challenge of CHALLENGES) {
    const r = repo('auth');
    const m = manifestOf(challenge);
    up.on(`/v2/${r}/manifests/1.0`, b.authed(b.challenge(challenge), b.json(m)));
    const a = await hostile(t, `/v2/${REG}/${r}/manifests/1.0`, { status: [401, 502, 504] });
    t.false(a.body.includes('INTERNAL-SECRET'), 'no internal answer is echoed');
  }
});

test.serial('a token service that misbehaves', async (t) => {
  const tokenPath = '/token-service';
  const services: [string, Behaviour][] = [
    ['stall', b.silent()],
    ['not json', b.json('<html>', { contentType: 'text/html' })],
    ['no token', b.json({ nothing: true }, { contentType: 'application/json' })],
    ['huge', b.hugeChunked(20 * 1024 * 1024, (_o, n) => Buffer.alloc(n, 0x20), { contentType: 'application/json' })],
    ['token not a string', b.json({ token: { a: 1 }, expires_in: 'soon' }, { contentType: 'application/json' })],
    ['redirect', b.redirect(`${canary.url}/token`)],
  ];
  for (const [name, service] of services) {
    const r = repo('token');
    up.on(`${tokenPath}/${r}`, service);
    const m = manifestOf(name);
    up.on(`/v2/${r}/manifests/1.0`, b.authed(b.challenge(`Bearer realm="${up.url}${tokenPath}/${r}"`), b.json(m)));
    await hostile(t, `/v2/${REG}/${r}/manifests/1.0`, { status: [401, 502, 504] });
  }
});

// ---- egress: the guard and deadlines of the egress branch, checked with this harness -------------

test.serial('SSRF: a blob redirect to an internal address is not followed', async (t) => {
  const blob = Buffer.concat([BLOB, Buffer.from('ssrf redirect')]);
  const { r, path, digest } = await admittedLayer(t, blob, 'ssrf');
  up.on(`/v2/${r}/blobs/${digest}`, b.redirect(`${canary.url}/metadata`));
  const before = canary.connections();
  const a = await send(path, { headers: { range: 'bytes=0-' } });
  t.false(a.body.includes('INTERNAL-SECRET'), 'the internal answer never reaches the client');
  t.is(canary.connections() - before, 0, 'no connection to the internal listener');
});

test.serial('SSRF: a token realm at an internal address is not asked', async (t) => {
  const r = repo('ssrf-realm');
  const m = manifestOf('ssrf realm');
  up.on(`/v2/${r}/manifests/1.0`, b.authed(b.challenge(`Bearer realm="${canary.url}/token"`), b.json(m)));
  const before = canary.connections();
  await send(`/v2/${REG}/${r}/manifests/1.0`);
  t.is(canary.connections() - before, 0, 'no connection to the internal listener');
});

test.serial('a manifest trickling at 20 B/s is given up at the overall deadline (totalMs)', async (t) => {
  const r = repo('trickle');
  const m = Buffer.from(JSON.stringify({ ...JSON.parse(manifestOf('trickle').toString()), pad: 'x'.repeat(4_000) }));
  up.on(`/v2/${r}/manifests/1.0`, b.slow(m, 20));
  const a = await hostile(t, `/v2/${REG}/${r}/manifests/1.0`, { status: [504] });
  t.true(a.ms < TIMEOUTS.totalMs + 2_000, `given up near totalMs (took ${Math.round(a.ms)} ms)`);
});

// ---- budgets of load: per-upstream fetches, decisions -------------------------------------------

/** Timeouts long enough that only the test ends a stall (a held request is never given up first). */
const PATIENT = { connectMs: 2_000, headersMs: 20_000, bodyMs: 20_000, totalMs: 30_000, blobTotalMs: 30_000 };

/** A behaviour that holds every request it gets until `release`, which answers them all with `then`. */
function held(): { behaviour: Behaviour; count(): number; release(then: Behaviour): void } {
  const waiting: [Parameters<Behaviour>[0], Parameters<Behaviour>[1]][] = [];
  let after: Behaviour | undefined;
  return {
    behaviour: (req, res) => (after ? after(req, res) : waiting.push([req, res])),
    count: () => waiting.length,
    release(then) {
      after = then;
      for (const [req, res] of waiting.splice(0)) then(req, res);
    },
  };
}

/** Polls `cond` every 20 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 5_000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 20) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

async function get(base: string, path: string, method: 'GET' | 'HEAD' = 'GET') {
  const started = performance.now();
  const res = await request(`${base}${path}`, {
    method,
    headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
    headersTimeout: CASE_MS,
    bodyTimeout: CASE_MS,
  });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body, ms: performance.now() - started };
}

test.serial(
  'limits.upstreamRequests: with a stalled upstream the next request is 503 with Retry-After at once; the stall over, pulls succeed',
  async (t) => {
    const tiny = await startPullgate(
      {
        upstreams: [{ host: REG, url: up.url, insecure: true, timeouts: PATIENT }],
        limits: { upstreamRequests: 1, upstreamBlobRequests: 1, upstreamQueue: 0 },
      },
      ALLOW_ALL,
    );
    try {
      const stalled = repo('budget-stalled');
      const other = repo('budget-other');
      const m1 = manifestOf('budget stalled');
      const m2 = manifestOf('budget other');
      const stall = held();
      up.on(`/v2/${stalled}/manifests/1.0`, stall.behaviour);
      up.on(`/v2/${other}/manifests/1.0`, b.json(m2));
      const first = get(tiny.url, `/v2/${REG}/${stalled}/manifests/1.0`);
      t.true(await until(() => stall.count() === 1), 'the stalled request reached the upstream');

      const busy = await get(tiny.url, `/v2/${REG}/${other}/manifests/1.0`);
      t.log(`second request while the upstream stalls: ${busy.status} in ${Math.round(busy.ms)} ms: ${busy.body}`);
      t.is(busy.status, 503);
      t.is(busy.headers['retry-after'], '2');
      t.true(busy.ms < 2_000, `refused at once (${Math.round(busy.ms)} ms), not after a wait`);
      const e = JSON.parse(busy.body) as { errors: { code: string; message: string }[] };
      t.is(e.errors[0]?.code, 'TOOMANYREQUESTS');
      t.regex(e.errors[0]?.message ?? '', /limits\.upstreamRequests 1, limits\.upstreamQueue 0/);
      t.is(up.count(`/v2/${other}/manifests/1.0`), 0, 'the refused request never reached the upstream');
      t.is((await get(tiny.url, '/v2/')).status, 200, 'the proxy still answers /v2/');
      t.regex(
        (await get(tiny.url, '/metrics')).body,
        /pullgate_events_total\{event="upstream-requests-refused-busy"\} 1\b/,
        'the refusal is counted',
      );
      t.true(tiny.alive());

      stall.release(b.json(m1));
      const firstAnswer = await first;
      t.is(firstAnswer.status, 200, 'the stalled pull is served once the upstream answers');
      t.is(firstAnswer.body, m1.toString());
      const again = await get(tiny.url, `/v2/${REG}/${other}/manifests/1.0`);
      t.is(again.status, 200, 'the slot is free again: the refused pull succeeds');
      t.is(again.body, m2.toString());
      // A 401, its token request and the retry run one after the other in the single slot.
      const authed = repo('budget-token');
      const m3 = manifestOf('budget token');
      up.on(`/token-budget/${authed}`, b.json({ token: 'budget-token' }, { contentType: 'application/json' }));
      up.on(
        `/v2/${authed}/manifests/1.0`,
        b.authed(b.challenge(`Bearer realm="${up.url}/token-budget/${authed}"`), b.json(m3)),
      );
      const viaToken = await get(tiny.url, `/v2/${REG}/${authed}/manifests/1.0`);
      t.is(viaToken.status, 200, `a pull through the token flow fits a budget of 1: ${viaToken.body}`);

      // Blobs have a budget of their own: a stalled blob transfer refuses the next blob, not manifests.
      const blobA = Buffer.concat([BLOB, Buffer.from('budget a')]);
      const blobB = Buffer.concat([BLOB, Buffer.from('budget b')]);
      const layers = [sha256(blobA), sha256(blobB)].map((digest, i) => ({ digest, size: [blobA, blobB][i]!.length }));
      const config = Buffer.from('{"budget":"blobs"}');
      const withLayers = Buffer.from(
        JSON.stringify(imageManifest({ digest: sha256(config), size: config.length }, layers)),
      );
      const r = repo('budget-blobs');
      up.on(`/v2/${r}/manifests/1.0`, b.json(withLayers));
      t.is((await get(tiny.url, `/v2/${REG}/${r}/manifests/1.0`)).status, 200);
      const blobStall = held();
      up.on(`/v2/${r}/blobs/${layers[0]!.digest}`, blobStall.behaviour);
      up.on(`/v2/${r}/blobs/${layers[1]!.digest}`, b.json(blobB, { contentType: 'application/octet-stream' }));
      const firstBlob = get(tiny.url, `/v2/${REG}/${r}/blobs/${layers[0]!.digest}`);
      t.true(await until(() => blobStall.count() === 1), 'the stalled blob request reached the upstream');
      const busyBlob = await get(tiny.url, `/v2/${REG}/${r}/blobs/${layers[1]!.digest}`);
      t.is(busyBlob.status, 503, busyBlob.body.slice(0, 300));
      t.is(busyBlob.headers['retry-after'], '2');
      t.regex(busyBlob.body, /limits\.upstreamBlobRequests 1/);
      // The cold fill runs in the fill thread, a blob HEAD in the main thread: one budget for both.
      const busyHead = await fetch(`${tiny.url}/v2/${REG}/${r}/blobs/${layers[1]!.digest}`, { method: 'HEAD' });
      t.is(busyHead.status, 503, 'a blob HEAD counts against the slot the fill thread holds');
      t.is(busyHead.headers.get('retry-after'), '2');
      t.is((await get(tiny.url, `/v2/${REG}/${other}/manifests/1.0`)).status, 200, 'manifests still pass');
      blobStall.release(b.json(blobA, { contentType: 'application/octet-stream' }));
      const blobAnswer = await firstBlob;
      t.is(blobAnswer.status, 200);
      t.is(sha256(blobAnswer.body), layers[0]!.digest);
      const blobAgain = await get(tiny.url, `/v2/${REG}/${r}/blobs/${layers[1]!.digest}`);
      t.is(blobAgain.status, 200);
      t.true(tiny.alive());
    } finally {
      await tiny.stop();
    }
  },
);

test.serial(
  'a tag the upstream names by a sha512 Docker-Content-Digest: the pull is refused, nothing is pinned',
  async (t) => {
    const r = repo('sha512');
    const m = manifestOf('sha512 tag');
    const sha512 = `sha512:${createHash('sha512').update(m).digest('hex')}`;
    // GET and HEAD of the tag alike name it by sha512 (the digest of these very bytes).
    up.on(`/v2/${r}/manifests/1.0`, b.json(m, { digest: sha512 }));
    for (const method of ['GET', 'HEAD'] as const) {
      const a = await hostile(
        t,
        `/v2/${REG}/${r}/manifests/1.0`,
        { status: [502], message: /sha256 digests only/ },
        { method },
      );
      if (method === 'GET') t.regex(a.body.toString('utf8'), /DIGEST_INVALID/);
    }
    // Nothing was pinned: once the upstream names the tag by sha256, the pull serves what it has now
    // (a pin to the first manifest would be served instead, whatever the upstream says).
    const now = manifestOf('sha512 tag, later');
    up.on(`/v2/${r}/manifests/1.0`, b.json(now));
    const a = await send(`/v2/${REG}/${r}/manifests/1.0`);
    t.is(a.status, 200);
    t.is(a.headers['docker-content-digest'], sha256(now), 'the tag was not pinned to the refused manifest');
  },
);

test.serial(
  'limits.concurrentDecisions 1, decisionQueue 0, evidence stalled: a second first pull is 503 with Retry-After',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pullgate-decisions-'));
    writeFileSync(join(dir, 'ci.pub'), generateKey('ecdsa-p256').publicPem);
    const policy = stringify({
      apiVersion: 'pullgate.dev/v1',
      kind: 'Policy',
      attestors: { ci: { keys: [{ file: join(dir, 'ci.pub') }] } },
      defaultRule: { evaluationMode: 'requireAttestation', requireAttestors: ['ci'] },
    });
    const gated = await startPullgate(
      {
        upstreams: [{ host: REG, url: up.url, insecure: true, timeouts: PATIENT }],
        limits: { concurrentDecisions: 1, decisionQueue: 0 },
      },
      policy,
    );
    try {
      const slow = repo('decide-slow');
      const next = repo('decide-next');
      const m1 = manifestOf('decide slow');
      const m2 = manifestOf('decide next');
      up.on(`/v2/${slow}/manifests/1.0`, b.json(m1));
      up.on(`/v2/${next}/manifests/1.0`, b.json(m2));
      // The first decision looks for its cosign signature and waits: the evidence upstream stalls.
      const evidence = held();
      up.on(`/v2/${slow}/manifests/${sha256(m1).replace(':', '-')}.sig`, evidence.behaviour);
      const first = get(gated.url, `/v2/${REG}/${slow}/manifests/1.0`);
      t.true(await until(() => evidence.count() === 1), 'the first decision is fetching its evidence');

      const busy = await get(gated.url, `/v2/${REG}/${next}/manifests/1.0`);
      t.log(
        `second first pull while a decision waits for evidence: ${busy.status} in ${Math.round(busy.ms)} ms: ${busy.body}`,
      );
      t.is(busy.status, 503);
      t.is(busy.headers['retry-after'], '2');
      t.true(busy.ms < 2_000, `refused at once (${Math.round(busy.ms)} ms)`);
      const e = JSON.parse(busy.body) as { errors: { code: string; message: string }[] };
      t.is(e.errors[0]?.code, 'TOOMANYREQUESTS');
      t.regex(e.errors[0]?.message ?? '', /limits\.concurrentDecisions 1, limits\.decisionQueue 0/);
      t.is((await get(gated.url, '/v2/')).status, 200, 'the proxy still answers /v2/');

      evidence.release(b.status(404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'no signature' }] }));
      t.is((await first).status, 403, 'the first decision ends: unsigned, denied');
      const again = await get(gated.url, `/v2/${REG}/${next}/manifests/1.0`);
      t.is(again.status, 403, 'with the slot free the second pull is decided (unsigned: denied), not refused for load');
      t.regex(again.body, /DENIED/);
      t.true(gated.alive());
    } finally {
      await gated.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
