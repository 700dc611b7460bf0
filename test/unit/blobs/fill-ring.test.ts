// Fill in ring mode (as the fill thread runs it): the file written from the ring holds exactly the
// bytes the hash saw, even from a body that keeps emitting after it was asked to pause, written
// direct where the ring and the filesystem allow it and through the page cache where not.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DIRECT_MIN_BYTES } from '../../../src/blobs/direct-io.ts';
import { Fill, type FillOptions, type FillOutcome } from '../../../src/blobs/fill.ts';
import { SharedRing } from '../../../src/blobs/ring.ts';
import type { BlobOrigin } from '../../../src/blobs/types.ts';
import { directIoWorks, pageCacheBytes } from '../../harness/direct-io.ts';
import net, { type AddressInfo } from 'node:net';
import { OwnConnections, ownSocketOptions } from '../../../src/oci/own-connections.ts';
import { buildConnector, type BuildOptions } from '../../../src/oci/undici.ts';

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** 4 KiB chunks; `deaf` ignores pause(), as a body that does not stop at once would. */
function body(content: Buffer, deaf: boolean): Readable {
  const chunks = Array.from({ length: Math.ceil(content.length / 4096) }, (_, i) =>
    content.subarray(i * 4096, (i + 1) * 4096),
  );
  const r = Readable.from(chunks, { objectMode: false });
  if (deaf) r.pause = () => r;
  return r;
}

const rings: {
  name: string;
  size: number;
  ring: NonNullable<FillOptions['ring']>;
  direct: boolean;
  /** The fill is asked to write direct (cache.blobs.directWrites). */
  tryDirect: boolean;
}[] = [
  {
    name: 'a 1 KiB ring under a 200 KiB blob',
    size: 200 * 1024 + 5,
    ring: () => new SharedRing(1024),
    direct: false,
    tryDirect: true,
  },
  // Large enough for direct writes (direct-io.ts DIRECT_MIN_BYTES), where the filesystem takes them.
  {
    name: 'a 64 KiB ring placed for direct writes under a 4 MiB blob',
    size: DIRECT_MIN_BYTES + 5,
    ring: (_size, place) => new SharedRing(64 * 1024, place),
    direct: true,
    tryDirect: true,
  },
  // The ring's data at an odd address, which no device takes direct writes from: the first one is
  // refused, and the fill goes on through the page cache from the same position.
  {
    name: 'a 64 KiB ring at a place the device refuses under a 4 MiB blob',
    size: DIRECT_MIN_BYTES + 5,
    ring: () => new SharedRing(64 * 1024, (_buffer, from) => from + 1),
    direct: false,
    tryDirect: true,
  },
  // Not asked to: through the page cache, whatever the filesystem allows.
  {
    name: 'a 64 KiB ring placed for direct writes under a 4 MiB blob, direct writes off',
    size: DIRECT_MIN_BYTES + 5,
    ring: (_size, place) => new SharedRing(64 * 1024, place),
    direct: false,
    tryDirect: false,
  },
  // Not whole blocks: direct writes are not tried.
  {
    name: 'a 6000-byte ring under a 4 MiB blob',
    size: DIRECT_MIN_BYTES + 5,
    ring: (_size, place) => new SharedRing(6000, place),
    direct: false,
    tryDirect: true,
  },
];

/**
 * The content over a loopback connection, read as the fill thread reads it (own-connections.ts): its
 * chunks are views of one read buffer, so what the ring has no room for must be kept as a copy.
 */
async function ownConnectionBody(content: Buffer, teardown: (f: () => unknown) => void) {
  const srv = net.createServer((sock) => {
    sock.once('data', () =>
      sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${content.length}\r\n\r\n`), content])),
    );
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const own = new OwnConnections(buildConnector({ ...ownSocketOptions() } as BuildOptions), {
    headersTimeoutMs: 5000,
    bodyTimeoutMs: 5000,
    keepAliveMs: 1000,
    maxIdle: 1,
  });
  teardown(() => (own.close(), srv.close()));
  const res = await own.get(new URL(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/b`), {});
  return { size: content.length, body: res.body };
}

const bodies = ['that pauses', 'deaf to pause', 'on an own connection'] as const;

for (const r of rings)
  for (const kind of bodies) {
    test(`${r.name}, body ${kind}: the file is the exact content`, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'fill-ring-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const content = randomBytes(r.size);
      const origin: BlobOrigin = {
        upstream: 'up.test',
        repository: 'app',
        get: async () =>
          kind === 'on an own connection'
            ? ownConnectionBody(content, (f) => t.teardown(f))
            : { size: content.length, body: body(content, kind === 'deaf to pause') },
        head: async () => ({ size: content.length }),
      };
      const tmpPath = join(dir, 'fill');
      let wroteDirect = false;
      const outcome = await new Promise<FillOutcome>((resolve) => {
        const fill = Fill.start(digestOf(content), tmpPath, origin, (_f, o) => resolve(o), {
          ring: r.ring,
          direct: r.tryDirect,
          onDisk: (f) => {
            wroteDirect ||= f.writesDirect && f.onDisk() > 0;
          },
        });
        t.teardown(() => fill.release());
      });
      t.true(outcome.ok, outcome.ok ? '' : outcome.error.message);
      const direct = r.direct && directIoWorks(dir);
      t.is(wroteDirect, direct, direct ? 'written direct' : 'written through the page cache');
      // Before the file is read back, which puts it there.
      const cached = pageCacheBytes(tmpPath);
      if (direct) t.true(cached <= 4096, `only the tail went through the page cache: ${cached} bytes there`);
      t.true(readFileSync(tmpPath).equals(content), 'the file holds the bytes in the order they were hashed');
    });
  }

test('a ring that cannot be made fails the fill, lets go of the upstream body and leaves no file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fill-ring-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const content = randomBytes(DIRECT_MIN_BYTES + 5);
  const upstreamBody = body(content, false);
  const origin: BlobOrigin = {
    upstream: 'up.test',
    repository: 'app',
    get: async () => ({ size: content.length, body: upstreamBody }),
    head: async () => ({ size: content.length }),
  };
  const tmpPath = join(dir, 'fill');
  const outcome = await new Promise<FillOutcome>((resolve) => {
    Fill.start(digestOf(content), tmpPath, origin, (_f, o) => resolve(o), {
      ring: () => {
        throw new RangeError('Array buffer allocation failed');
      },
      direct: true,
    });
  });
  t.false(outcome.ok);
  t.regex(outcome.ok ? '' : outcome.error.message, /Array buffer allocation failed/);
  t.true(upstreamBody.destroyed, 'the upstream body is destroyed, so its connection and budget slot go back');
  for (let i = 0; i < 50 && readdirSync(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(readdirSync(dir), [], 'the temporary file is removed');
});
