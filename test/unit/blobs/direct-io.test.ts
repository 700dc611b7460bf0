// Direct reads and writes (direct-io.ts) against a real file in the test's temporary directory:
// exact bytes at any position, whole blocks only on disk, and a refusal is reported, not thrown.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  alignDown,
  DIRECT_BLOCK,
  DIRECT_MIN_BYTES,
  DIRECT_SLACK,
  DirectFile,
  DirectReader,
  directWritesFor,
  reportsFreePages,
} from '../../../src/blobs/direct-io.ts';
import { SharedRing } from '../../../src/blobs/ring.ts';
import { directIoWorks } from '../../harness/direct-io.ts';

const MIB = 1024 * 1024;

function scratch(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'direct-io-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('alignDown keeps whole blocks', (t) => {
  const table: [number, number][] = [
    [0, 0],
    [1, 0],
    [DIRECT_BLOCK - 1, 0],
    [DIRECT_BLOCK, DIRECT_BLOCK],
    [3 * DIRECT_BLOCK + 7, 3 * DIRECT_BLOCK],
  ];
  for (const [n, want] of table) t.is(alignDown(n), want, `${n}`);
});

test('a direct reader returns the exact bytes asked for, at any position, up to the limit and the end of the file', async (t) => {
  const dir = scratch(t);
  if (!directIoWorks(dir)) {
    t.log(`direct I/O: not on the filesystem of ${dir}; reopen must say so`);
    const fh = await open(join(dir, 'f'), 'w+');
    t.teardown(() => fh.close());
    t.is(await DirectReader.reopen(fh), undefined);
    return;
  }
  const content = randomBytes(3 * MIB + 123);
  const path = join(dir, 'blob');
  writeFileSync(path, content);
  const fh = await open(path, 'r');
  t.teardown(() => fh.close());
  // Renamed after it was opened, as a fill's file is when the cache takes it.
  renameSync(path, join(dir, 'entry'));
  const reader = await DirectReader.reopen(fh);
  t.truthy(reader, 'the file is opened again for direct reads');
  t.teardown(() => reader?.close());
  const buf = Buffer.allocUnsafeSlow(MIB + DIRECT_SLACK);
  const cases: { pos: number; limit: number; bytes: number }[] = [
    { pos: 0, limit: content.length, bytes: MIB },
    { pos: 1, limit: content.length, bytes: MIB - 1 }, // a read ends on the block after a chunk
    { pos: DIRECT_BLOCK - 1, limit: DIRECT_BLOCK + 10, bytes: 11 },
    { pos: DIRECT_BLOCK, limit: 2 * DIRECT_BLOCK, bytes: DIRECT_BLOCK },
    { pos: MIB + 7, limit: MIB + 7 + 100_000, bytes: 100_000 },
    { pos: content.length - 5, limit: content.length, bytes: 5 },
    { pos: content.length - 5, limit: content.length + 10 * DIRECT_BLOCK, bytes: 5 }, // the end of the file
    { pos: content.length, limit: content.length + DIRECT_BLOCK, bytes: 0 },
  ];
  for (const c of cases) {
    const got = await reader!.read(buf, c.pos, c.limit);
    t.truthy(got, JSON.stringify(c));
    t.is(got!.length, c.bytes, JSON.stringify(c));
    t.true(got!.equals(content.subarray(c.pos, c.pos + c.bytes)), `exact bytes at ${JSON.stringify(c)}`);
  }
});

test('direct writes: small blobs are not written direct; whole blocks from a placed ring are, from an odd place refused', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'fill');
  writeFileSync(path, '');
  t.is(await DirectFile.open(path, DIRECT_MIN_BYTES - 1), undefined, 'a small blob goes through the page cache');
  t.is(await DirectFile.open(path, undefined), undefined, 'so does one of unknown size');
  const direct = await DirectFile.open(path, DIRECT_MIN_BYTES);
  if (!directIoWorks(dir)) {
    t.log(`direct I/O: not on the filesystem of ${dir}`);
    t.is(direct, undefined);
    return;
  }
  t.truthy(direct);
  t.teardown(() => direct?.close());
  const ring = new SharedRing(4 * DIRECT_BLOCK, direct!.place);
  const content = randomBytes(3 * DIRECT_BLOCK);
  ring.append(content, 0);
  t.true(await direct!.write(ring.views(0, content.length), 0, content.length), 'whole blocks from the ring are taken');
  t.true(readFileSync(path).equals(content));
  const odd = new SharedRing(4 * DIRECT_BLOCK, (_buffer, from) => from + 1);
  odd.append(content, 0);
  t.false(await direct!.write(odd.views(0, DIRECT_BLOCK), 0, DIRECT_BLOCK), 'an odd address is refused, not thrown');
});

test('direct writes by cache.blobs.directWrites, and on auto where the VM reports its free pages', (t) => {
  const cases: { mode: 'auto' | 'always' | 'never'; reported: boolean; direct: boolean }[] = [
    { mode: 'auto', reported: true, direct: true },
    { mode: 'auto', reported: false, direct: false },
    { mode: 'always', reported: false, direct: true },
    { mode: 'never', reported: true, direct: false },
  ];
  for (const c of cases) t.is(directWritesFor(c.mode, c.reported).direct, c.direct, JSON.stringify(c));
});

test('free page reporting is read from the balloon device negotiated features in sysfs', (t) => {
  const dir = scratch(t);
  const device = (name: string, id: string, features: string) => {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'device'), `${id}\n`);
    writeFileSync(join(dir, name, 'features'), `${features.padEnd(64, '0')}\n`);
  };
  t.false(reportsFreePages(join(dir, 'absent')), 'no virtio devices: a machine of its own');
  device('virtio1', '0x0002', '001001'); // a block device, whose bit 5 means something else
  t.false(reportsFreePages(dir));
  device('virtio0', '0x0005', '01100001'); // a balloon without free page reporting
  t.false(reportsFreePages(dir));
  rmSync(join(dir, 'virtio0'), { recursive: true });
  device('virtio0', '0x0005', '01100101'); // bit 5: VIRTIO_BALLOON_F_REPORTING
  t.true(reportsFreePages(dir));
});
