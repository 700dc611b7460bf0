// The blob store on a real directory, with an in-memory origin whose answers the tests control.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { BlobCache } from '../../../src/blobs/cache.ts';
import { BlobStore } from '../../../src/blobs/store.ts';
import type { BlobBody, BlobOrigin, ByteRange, UpstreamBlob } from '../../../src/blobs/types.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { createLogger } from '../../../src/ops/log.ts';

const logger = createLogger('silent');
const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Served {
  content: Buffer;
  /** What to send instead of `content` (a wrong or cut body); defaults to content. */
  send?: Buffer;
  declared?: number | null;
  /** Pushed chunk by chunk on demand when set; else all at once. */
  manual?: boolean;
  /**
   * The body breaks as soon as it is handed over, before anyone reads it (an upstream whose first
   * packet has the headers and then a protocol error): with an error, or closed without one.
   */
  broken?: 'error' | 'close';
}

function origin(blobs: Map<string, Served>) {
  const calls = { get: 0, head: 0 };
  const streams: PassThrough[] = [];
  const o = (digest: string): BlobOrigin => ({
    upstream: 'up.test',
    async get(): Promise<UpstreamBlob> {
      calls.get++;
      const b = blobs.get(digest);
      if (!b) throw new RegistryError('not-found', 'BLOB_UNKNOWN', `upstream up.test answered 404`);
      const bytes = b.send ?? b.content;
      const declared = b.declared === null ? undefined : (b.declared ?? bytes.length);
      if (b.broken) {
        const p = new PassThrough();
        p.write(bytes.subarray(0, 5));
        p.on('error', () => undefined);
        p.destroy(b.broken === 'error' ? new Error('Invalid character in chunk size') : undefined);
        return { size: declared, body: p };
      }
      if (b.manual) {
        const p = new PassThrough();
        streams.push(p);
        return { size: declared, body: p };
      }
      return { size: declared, body: Readable.from(chunks(bytes, 64 * 1024)) };
    },
    async head() {
      calls.head++;
      const b = blobs.get(digest);
      if (!b) throw new RegistryError('not-found', 'BLOB_UNKNOWN', `upstream up.test answered 404`);
      return { size: b.content.length };
    },
  });
  return { o, calls, streams };
}

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

async function newStore(maxBytes = 64 * 1024 * 1024, dir?: string) {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'pullgate-blobs-'));
  if (!dir) dirs.push(d);
  const cache = new BlobCache({ dir: d, maxBytes });
  await cache.open();
  return { store: new BlobStore(cache, logger), cache, dir: d };
}

/** A client: collects what it is sent (copying, since the sender reuses its buffers), optionally stalling. */
class Sink extends Writable {
  readonly parts: Buffer[] = [];
  #stalled: (() => void)[] = [];
  stall = false;
  constructor() {
    super({ highWaterMark: 64 * 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.parts.push(Buffer.from(chunk));
    if (this.stall) this.#stalled.push(() => cb());
    else cb();
  }
  release(): void {
    this.stall = false;
    for (const cb of this.#stalled.splice(0)) cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

async function readAll(body: BlobBody, range?: ByteRange): Promise<Buffer> {
  const sink = new Sink();
  await body.send(sink, range, 10_000);
  return sink.bytes;
}

/** What a reader got before the send ended or failed. */
async function readUntilEnd(body: BlobBody): Promise<{ bytes: Buffer; error?: Error }> {
  const sink = new Sink();
  try {
    await body.send(sink, undefined, 10_000);
    return { bytes: sink.bytes };
  } catch (error) {
    return { bytes: sink.bytes, error: error as Error };
  }
}

test('a cold blob is fetched once, served whole, and kept: the next request is a cache hit', async (t) => {
  const content = randomBytes(300_000);
  const d = digestOf(content);
  const { o, calls } = origin(new Map([[d, { content }]]));
  const { store, cache } = await newStore();
  const first = await store.open(d, o(d));
  t.is(first.source, 'fill');
  t.is(first.size, content.length);
  t.true((await readAll(first)).equals(content));
  await first.complete;
  await waitUntil(() => cache.get(d) !== undefined);
  const second = await store.open(d, o(d));
  t.is(second.source, 'cache');
  t.true((await readAll(second)).equals(content));
  t.is(calls.get, 1);
});

test('twenty concurrent requests for a cold blob share one upstream fetch and all get the whole content', async (t) => {
  const content = randomBytes(1_000_000);
  const d = digestOf(content);
  const { o, calls, streams } = origin(new Map([[d, { content, manual: true }]]));
  const { store } = await newStore();
  const opening = Array.from({ length: 20 }, () => store.open(d, o(d)));
  await waitUntil(() => streams.length === 1);
  const up = streams[0]!;
  for (const c of chunks(content, 100_000)) up.write(c);
  up.end();
  const bodies = await Promise.all(opening);
  const got = await Promise.all(bodies.map((b) => readAll(b)));
  t.is(calls.get, 1);
  for (const g of got) t.true(g.equals(content));
});

test('content that does not hash to its digest: readers never get the last byte, the stream fails, nothing is kept', async (t) => {
  const content = randomBytes(200_000);
  const d = digestOf(content);
  const wrong = Buffer.from(content);
  wrong.writeUInt8(wrong.readUInt8(wrong.length - 1) ^ 0xff, wrong.length - 1);
  const { o } = origin(new Map([[d, { content, send: wrong }]]));
  const { store, cache, dir } = await newStore();
  const body = await store.open(d, o(d));
  const got = await readUntilEnd(body);
  t.truthy(got.error);
  t.regex(got.error!.message, /does not hash to it/);
  t.true(got.bytes.length < content.length, 'the last byte was withheld');
  await t.throwsAsync(body.complete);
  t.is(cache.get(d), undefined);
  await waitUntil(() => readdirSync(join(dir, 'tmp')).length === 0);
});

test('a body cut short, one longer than declared, and an upstream 404 each end that request only', async (t) => {
  const content = randomBytes(100_000);
  const d1 = digestOf(content);
  const other = randomBytes(50_000);
  const d2 = digestOf(other);
  const { o } = origin(
    new Map([
      [d1, { content, send: content.subarray(0, 60_000), declared: content.length }],
      [d2, { content: other, send: Buffer.concat([other, Buffer.from('x')]), declared: other.length }],
    ]),
  );
  const { store, cache } = await newStore();
  const cut = await readUntilEnd(await store.open(d1, o(d1)));
  t.regex(cut.error?.message ?? '', /ended after 60000 of the 100000 bytes/);
  const long = await readUntilEnd(await store.open(d2, o(d2)));
  t.regex(long.error?.message ?? '', /more than the 50000 bytes it declared/);
  const missing = `sha256:${'0'.repeat(64)}`;
  const err = await t.throwsAsync(store.open(missing, o(missing)), { instanceOf: RegistryError });
  t.is(err.failure, 'not-found');
  t.is(cache.stats().entries, 0);
});

test('a body that broke before the fill read it fails the fill at once instead of hanging it', async (t) => {
  for (const broken of ['error', 'close'] as const) {
    const content = randomBytes(10_000);
    const d = digestOf(content);
    const { o } = origin(new Map([[d, { content, broken }]]));
    const { store, cache } = await newStore();
    const body = await store.open(d, o(d));
    const outcome = await Promise.race([
      readUntilEnd(body),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 2_000)),
    ]);
    if (outcome === 'hung') {
      t.fail(`${broken}: the send neither ended nor failed within 2 s`);
      continue;
    }
    t.regex(outcome.error?.message ?? '', /broke off/, `${broken}: the reader hears why`);
    await t.throwsAsync(body.complete);
    t.is(cache.get(d), undefined);
  }
});

test('a reader that stops reading does not stall the fill or other readers, and is cut off after the write timeout', async (t) => {
  const content = randomBytes(8 * 1024 * 1024);
  const d = digestOf(content);
  const { o } = origin(new Map([[d, { content }]]));
  const { store } = await newStore();
  const stalled = await store.open(d, o(d));
  const slow = new Sink();
  slow.stall = true;
  const stalledSend = stalled.send(slow, undefined, 300);
  const other = await store.open(d, o(d));
  t.true((await readAll(other)).equals(content));
  await stalled.complete;
  const err = await t.throwsAsync(stalledSend);
  t.regex(err.message, /took no bytes for 300 ms/);
});

test('ranges of a cached blob, and of a fill once complete', async (t) => {
  const content = randomBytes(3_000_000);
  const d = digestOf(content);
  const { o } = origin(new Map([[d, { content }]]));
  const { store } = await newStore();
  const cold = await store.open(d, o(d));
  await cold.complete;
  t.true((await readAll(cold, { start: 1_000_000, end: 2_499_999 })).equals(content.subarray(1_000_000, 2_500_000)));
  await waitUntil(() => store.cache.get(d) !== undefined);
  const warm = await store.open(d, o(d));
  t.is(warm.source, 'cache');
  t.true((await readAll(warm, { start: 2_999_990, end: Infinity })).equals(content.subarray(2_999_990)));
});

test('eviction by last use under a small maxBytes never breaks a download in progress', async (t) => {
  const blobs = [randomBytes(400_000), randomBytes(400_000), randomBytes(800_000)];
  const ds = blobs.map(digestOf);
  const { o } = origin(new Map(blobs.map((b, i) => [ds[i]!, { content: b }])));
  const { store, cache } = await newStore(900_000);
  for (const d of ds.slice(0, 2)) await readAll(await store.open(d, o(d)));
  await waitUntil(() => cache.stats().entries === 2);
  // A slow download of the least recently used entry is under way when the third blob evicts it.
  const reading = await store.open(ds[0]!, o(ds[0]!));
  t.is(reading.source, 'cache');
  const slow = new Sink();
  slow.stall = true;
  const sending = reading.send(slow, undefined, 10_000);
  await readAll(await store.open(ds[2]!, o(ds[2]!)));
  await waitUntil(() => cache.get(ds[2]!) !== undefined);
  t.true(cache.stats().bytes <= 900_000);
  t.is(cache.get(ds[1]!), undefined, 'the least recently used entry was evicted');
  t.is(cache.get(ds[0]!), undefined, 'and so was the one being read, to make room');
  slow.release();
  t.is(await sending, blobs[0]!.length);
  t.true(slow.bytes.equals(blobs[0]!));
});

test('a blob larger than the whole cache is served but not kept', async (t) => {
  const content = randomBytes(500_000);
  const d = digestOf(content);
  const { o, calls } = origin(new Map([[d, { content }]]));
  const { store, cache } = await newStore(100_000);
  t.true((await readAll(await store.open(d, o(d)))).equals(content));
  await waitUntil(() => store.filling === 0);
  t.is(cache.stats().entries, 0);
  t.true((await readAll(await store.open(d, o(d)))).equals(content));
  t.is(calls.get, 2);
});

test('a restart keeps the cache and its last-use order; a file removed or cut short beside it is fetched again', async (t) => {
  const blobs = [randomBytes(10_000), randomBytes(20_000), randomBytes(30_000)];
  const ds = blobs.map(digestOf);
  const { o, calls } = origin(new Map(blobs.map((b, i) => [ds[i]!, { content: b }])));
  const first = await newStore();
  for (const d of ds) await readAll(await first.store.open(d, o(d)));
  await waitUntil(() => first.cache.stats().entries === 3);
  utimesSync(first.cache.pathOf(ds[1]!), new Date(1_000_000), new Date(1_000_000));
  const again = await newStore(64 * 1024 * 1024, first.dir);
  t.deepEqual(
    again.cache
      .list()
      .map((e) => e.digest)
      .sort(),
    [...ds].sort(),
  );
  t.is(again.cache.list()[0]!.digest, ds[1]!, 'the oldest last use is first to go');
  t.is(again.cache.stats().bytes, 60_000);
  t.is((await again.store.open(ds[0]!, o(ds[0]!))).source, 'cache');
  truncateSync(again.cache.pathOf(ds[2]!), 5);
  const refetched = await again.store.open(ds[2]!, o(ds[2]!));
  t.is(refetched.source, 'fill');
  t.true((await readAll(refetched)).equals(blobs[2]!));
  t.is(calls.get, 4);
});

test('cache verify re-hashes every entry and drops the ones that do not match', async (t) => {
  const blobs = [randomBytes(10_000), randomBytes(10_000)];
  const ds = blobs.map(digestOf);
  const { o } = origin(new Map(blobs.map((b, i) => [ds[i]!, { content: b }])));
  const { store, cache } = await newStore();
  for (const d of ds) await readAll(await store.open(d, o(d)));
  await waitUntil(() => cache.stats().entries === 2);
  writeFileSync(cache.pathOf(ds[0]!), randomBytes(10_000));
  const result = await cache.verify();
  t.is(result.checked, 2);
  t.deepEqual(result.removed, [ds[0]]);
  t.is(cache.get(ds[0]!), undefined);
  t.truthy(cache.get(ds[1]!));
});

test('HEAD sizes come from the cache, a running fill, or the upstream without fetching the bytes', async (t) => {
  const content = randomBytes(70_000);
  const d = digestOf(content);
  const { o, calls } = origin(new Map([[d, { content }]]));
  const { store, cache } = await newStore();
  t.is(await store.size(d, o(d)), 70_000);
  t.is(calls.head, 1);
  t.is(calls.get, 0);
  await readAll(await store.open(d, o(d)));
  await waitUntil(() => cache.get(d) !== undefined);
  t.is(await store.size(d, o(d)), 70_000);
  t.is(calls.head, 1);
});

async function waitUntil(cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('close lets a fill whose client was served reach the cache first, and waits for a stalled fill no longer than it is told', async (t) => {
  const content = randomBytes(3_000_000);
  const stalled = randomBytes(100_000);
  const [d, s] = [digestOf(content), digestOf(stalled)];
  const { o, streams } = origin(
    new Map([
      [d, { content }],
      [s, { content: stalled, manual: true }],
    ]),
  );
  const { store, cache } = await newStore();
  t.true((await readAll(await store.open(d, o(d)))).equals(content));
  // The client has every byte; the fill still syncs and renames its file.
  t.is(cache.get(d), undefined);
  await store.close(5_000);
  t.is(cache.get(d)?.size, content.length, 'in the cache once close resolves');

  const again = await newStore();
  const opening = again.store.open(s, o(s));
  await waitUntil(() => streams.length === 1);
  streams[0]!.write(stalled.subarray(0, 1000));
  await opening;
  const t0 = performance.now();
  await again.store.close(200);
  const waited = performance.now() - t0;
  t.true(waited >= 190 && waited < 2_000, `close waited ${waited.toFixed(0)} ms for a fill that never ends`);
  streams[0]!.destroy();
});
