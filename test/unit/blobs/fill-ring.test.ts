// Fill in ring mode (as the fill thread runs it): the file written from the ring holds exactly the
// bytes the hash saw, even from a body that keeps emitting after it was asked to pause.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Fill, type FillOutcome } from '../../../src/blobs/fill.ts';
import { SharedRing } from '../../../src/blobs/ring.ts';
import type { BlobOrigin } from '../../../src/blobs/types.ts';

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

for (const deaf of [false, true]) {
  test(`a 1 KiB ring under a 200 KiB blob, body ${deaf ? 'deaf to pause' : 'that pauses'}: the file is the exact content`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fill-ring-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const content = randomBytes(200 * 1024 + 5);
    const origin: BlobOrigin = {
      upstream: 'up.test',
      repository: 'app',
      get: async () => ({ size: content.length, body: body(content, deaf) }),
      head: async () => ({ size: content.length }),
    };
    const tmpPath = join(dir, 'fill');
    const outcome = await new Promise<FillOutcome>((resolve) => {
      Fill.start(digestOf(content), tmpPath, origin, (_f, o) => resolve(o), { ring: () => new SharedRing(1024) });
    });
    t.true(outcome.ok, outcome.ok ? '' : outcome.error.message);
    t.true(readFileSync(tmpPath).equals(content), 'the file holds the bytes in the order they were hashed');
  });
}
