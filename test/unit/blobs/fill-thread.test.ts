// The fill thread: blob fills run in a worker with its own registry client, against a loopback
// HTTP upstream the tests control; the main thread's readers see exactly what the thread
// verified, and a thread that dies fails its fills without taking the process with it.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { BlobCache } from '../../../src/blobs/cache.ts';
import { FillThread } from '../../../src/blobs/fill-thread.ts';
import { BlobStore } from '../../../src/blobs/store.ts';
import { blobOrigin } from '../../../src/blobs/upstream-origin.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { RegistryClient } from '../../../src/oci/client.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { createLogger } from '../../../src/ops/log.ts';
import { directIoWorks, pageCacheBytes } from '../../harness/direct-io.ts';

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A registry that serves blobs from a map; `wrong` digests get other bytes of the same length. */
async function upstream(blobs: Map<string, Buffer>, wrong = new Set<string>()) {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
    const body = digest ? blobs.get(digest) : undefined;
    if (!digest || !body) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(wrong.has(digest) ? Buffer.alloc(body.length, 7) : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(r)) };
}

function setUp(url: string, script?: URL, warmPageCache?: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'pullgate-fill-thread-'));
  const lines: Record<string, unknown>[] = [];
  const logged = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const file = join(dir, 'pullgate.yaml');
  writeFileSync(
    file,
    stringify({
      upstreams: [{ host: 'up.test', url, insecure: true, egress: { allowCidrs: ['127.0.0.0/8'] } }],
      cache: { blobs: { path: join(dir, 'blobs') } },
    }),
  );
  const config = loadConfig(file, {});
  const seen: string[] = [];
  const thread = new FillThread({
    upstreams: config.upstreams,
    observer: { upstreamRequest: (host, op, status) => seen.push(`${host} ${op} ${status}`) },
    ...(script ? { script } : {}),
    ...(warmPageCache === undefined ? {} : { warmPageCache }),
    directWrites: true,
  });
  const cache = new BlobCache({ dir: join(dir, 'blobs'), maxBytes: 1 << 30 });
  const store = new BlobStore(cache, createLogger('info', logged), undefined, thread);
  const client = new RegistryClient(config.upstreams[0]!);
  return {
    dir,
    cache,
    store,
    thread,
    seen,
    /** The store's 'blob fill' log lines. */
    fills: () => lines.filter((l) => l.msg === 'blob fill'),
    /** The log lines with this message. */
    logged: (msg: string) => lines.filter((l) => l.msg === msg),
    origin: (digest: string) => blobOrigin(client, 'app', digest),
    async close() {
      await store.close();
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function read(
  store: BlobStore,
  origin: ReturnType<ReturnType<typeof setUp>['origin']>,
  digest: string,
  delayMs = 0,
) {
  const body = await store.open(digest, origin);
  const parts: Buffer[] = [];
  const out = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      if (delayMs > 0) setTimeout(cb, delayMs);
      else cb();
    },
  });
  await body.send(out, undefined, 5_000);
  return { source: body.source, bytes: Buffer.concat(parts) };
}

test('a cold blob is fetched by the fill thread, readers get its exact bytes, and it is cached once verified', async (t) => {
  const content = randomBytes(5 * 1024 * 1024 + 17);
  const digest = digestOf(content);
  const up = await upstream(new Map([[digest, content]]));
  const s = setUp(up.url);
  t.teardown(async () => {
    await s.close();
    await up.close();
  });
  await s.cache.open();
  const [a, b] = await Promise.all([read(s.store, s.origin(digest), digest), read(s.store, s.origin(digest), digest)]);
  t.is(a.source, 'fill');
  t.true(a.bytes.equals(content), 'the first reader got the blob');
  t.true(b.bytes.equals(content), 'the second reader got the blob from the same fill');
  t.deepEqual(
    up.requests.filter((r) => r.includes('/blobs/')),
    [`GET /v2/app/blobs/${digest}`],
    'one upstream fetch for both',
  );
  // The cache takes the file once the thread reported it on disk and synced.
  for (let i = 0; i < 100 && !(await s.cache.find(digest)); i++) await new Promise((r) => setTimeout(r, 20));
  const again = await read(s.store, s.origin(digest), digest);
  t.is(again.source, 'cache');
  t.true(again.bytes.equals(content));
  t.true(
    s.seen.includes('up.test blob 200'),
    `the thread's upstream requests reach the main thread's metrics: ${s.seen}`,
  );
});

for (const warm of [false, true])
  test(`a blob larger than the shared ring: a reader at the head copies from memory, one far behind reads the file; both get the exact bytes${warm ? ', and the entry is read back into the page cache after' : ''}`, async (t) => {
    // 24 MiB through a 2 MiB ring (fill-worker.ts RING_BYTES): the slow reader (50 ms per chunk,
    // about 20 MiB/s) falls behind the ring and finds older bytes on disk, never torn ones.
    const content = randomBytes(24 * 1024 * 1024 + 3);
    const digest = digestOf(content);
    const up = await upstream(new Map([[digest, content]]));
    const s = setUp(up.url, undefined, warm);
    t.teardown(async () => {
      await s.close();
      await up.close();
    });
    await s.cache.open();
    const [fast, slow] = await Promise.all([
      read(s.store, s.origin(digest), digest),
      read(s.store, s.origin(digest), digest, 50),
    ]);
    t.is(fast.source, 'fill');
    t.is(slow.source, 'fill');
    t.true(fast.bytes.equals(content), 'the reader at the head got the exact bytes');
    t.true(slow.bytes.equals(content), 'the reader behind the ring got the exact bytes');
    t.is(up.requests.filter((r) => r.includes('/blobs/')).length, 1, 'one upstream fetch');
    // Written, and read back behind the ring, past the page cache where the filesystem allows it
    // (direct-io.ts); through it where it does not, with the same bytes.
    const direct = await directIoWorks(s.dir);
    t.log(direct ? 'direct I/O: yes' : `direct I/O: not on the filesystem of ${s.dir}`);
    t.like(s.fills()[0], { digest, bytes: content.length, direct });
    // Nothing read through the page cache either: the file's pages there are the tail's, at most,
    // until the fill thread reads it back.
    if (!direct) return;
    const path = s.cache.pathOf(digest);
    if (!warm) {
      const cached = pageCacheBytes(path);
      t.true(cached <= 64 * 1024, `the entry is not in the page cache: ${cached} bytes there`);
      return;
    }
    // Read back by the fill thread once the fill was done, so the next hit reads memory.
    let cached = 0;
    for (let i = 0; i < 100 && cached < content.length; i++) {
      await new Promise((r) => setTimeout(r, 50));
      cached = pageCacheBytes(path);
    }
    t.true(cached >= content.length, `the whole entry is in the page cache: ${cached} bytes there`);
  });

test('the fill thread stops when idle and the next cold fill starts another', async (t) => {
  const first = randomBytes(1024 * 1024);
  const second = randomBytes(2 * 1024 * 1024 + 1);
  const blobs = new Map([
    [digestOf(first), first],
    [digestOf(second), second],
  ]);
  const up = await upstream(blobs);
  const s = setUp(up.url);
  t.teardown(async () => {
    await s.close();
    await up.close();
  });
  await s.cache.open();
  t.true((await read(s.store, s.origin(digestOf(first)), digestOf(first))).bytes.equals(first));
  for (let i = 0; i < 100 && !(await s.cache.find(digestOf(first))); i++) await new Promise((r) => setTimeout(r, 20));
  t.is(s.store.filling, 0);
  await s.thread.stopIfIdle();
  t.false(s.thread.running, 'no thread is left at rest');
  t.true((await read(s.store, s.origin(digestOf(second)), digestOf(second))).bytes.equals(second));
  t.true(s.thread.running, 'a new thread ran the next fill');
});

// An admitted manifest's blobs are expected next: the thread starts only when one of them must be fetched through it.
const expectations: {
  name: string;
  blobs: (cached: string, cold: string) => string[];
  upstream?: string;
  starts: boolean;
}[] = [
  { name: 'one blob not cached', blobs: (cached, cold) => [cached, cold], starts: true },
  { name: 'every blob cached', blobs: (cached) => [cached], starts: false },
  { name: 'no blobs (an index)', blobs: () => [], starts: false },
  { name: 'an upstream the thread does not serve', blobs: (_, cold) => [cold], upstream: 'other.test', starts: false },
];
for (const c of expectations) {
  test(`expected blobs: ${c.name}: the fill thread ${c.starts ? 'starts' : 'does not start'}`, async (t) => {
    const cachedBytes = randomBytes(1024 * 1024);
    const cached = digestOf(cachedBytes);
    const cold = digestOf(randomBytes(1024));
    const up = await upstream(new Map([[cached, cachedBytes]]));
    const s = setUp(up.url);
    t.teardown(async () => {
      await s.close();
      await up.close();
    });
    await s.cache.open();
    await read(s.store, s.origin(cached), cached);
    for (let i = 0; i < 100 && !s.cache.has(cached); i++) await new Promise((r) => setTimeout(r, 20));
    t.true(s.cache.has(cached));
    await s.thread.stopIfIdle();
    t.false(s.thread.running);
    s.store.expect(c.blobs(cached, cold), c.upstream ?? 'up.test', 'app');
    t.is(s.thread.running, c.starts);
    t.deepEqual(
      up.requests.filter((r) => r.includes(cold)),
      [],
      'getting ready fetches nothing',
    );
  });
}

test('expected blobs after the store closed: no thread starts, and none is said to', async (t) => {
  const up = await upstream(new Map());
  const s = setUp(up.url);
  t.teardown(async () => {
    await s.close();
    await up.close();
  });
  await s.cache.open();
  s.store.expect([digestOf(randomBytes(16))], 'up.test', 'app');
  t.true(s.thread.running, 'an open store starts it');
  t.is(s.logged('fill thread started: an admitted image lists blobs to fetch').length, 1);
  await s.store.close();
  t.false(s.thread.running);
  s.store.expect([digestOf(randomBytes(16))], 'up.test', 'app');
  t.false(s.thread.running, 'a closed one does not');
  t.is(s.logged('fill thread started: an admitted image lists blobs to fetch').length, 1);
});

test('content that does not hash to its digest never reaches a reader whole, is not cached, and leaves no file', async (t) => {
  const content = randomBytes(3 * 1024 * 1024);
  const digest = digestOf(content);
  const up = await upstream(new Map([[digest, content]]), new Set([digest]));
  const s = setUp(up.url);
  t.teardown(async () => {
    await s.close();
    await up.close();
  });
  await s.cache.open();
  const err = await t.throwsAsync(read(s.store, s.origin(digest), digest));
  t.regex(String(err?.message), /does not hash to it/);
  t.is(await s.cache.find(digest), undefined);
  for (let i = 0; i < 50 && readdirSync(join(s.dir, 'blobs', 'tmp')).length > 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(readdirSync(join(s.dir, 'blobs', 'tmp')), [], 'the temporary file is gone');
});

test('a fill thread that dies fails its fills with an OCI error; the next fill starts a new thread', async (t) => {
  const content = randomBytes(64 * 1024);
  const digest = digestOf(content);
  const up = await upstream(new Map([[digest, content]]));
  const s = setUp(up.url, new URL('./dying-fill-worker.ts', import.meta.url));
  process.env.DYING_FILL_WORKER_DIR = s.dir;
  t.teardown(async () => {
    await s.close();
    await up.close();
  });
  await s.cache.open();
  const err = await t.throwsAsync(read(s.store, s.origin(digest), digest));
  t.true(err instanceof RegistryError);
  t.is((err as RegistryError).code, 'UNAVAILABLE');
  t.regex(String(err?.message), /the blob fill thread stopped \(it exited with code 3\)/);
  // The scripted worker dies on its first fill only; a new thread serves the retry.
  const ok = await read(s.store, s.origin(digest), digest);
  t.true(ok.bytes.equals(content));
});
