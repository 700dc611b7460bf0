// Sending a file that grows behind a ring, as a cold reader that fell behind the fill does: reads
// ahead of the socket come only from bytes already on disk.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { sendFile, type GrowingFile } from '../../../src/blobs/file-sender.ts';
import { directIoWorks } from '../../harness/direct-io.ts';

const MIB = 1024 * 1024;

/**
 * A writer that keeps its newest 2 MiB in memory and writes what leaves it to the file (so the
 * file ends where the disk does, as a fill's does). It moves on by `step` bytes each time the
 * client takes a chunk: faster than the client, so the reader falls behind the memory, passing
 * close behind its oldest byte on the way.
 */
function growing(content: Buffer, fh: FileHandle, step: number) {
  let lo = 0;
  let hi = 0;
  let wake: (() => void) | undefined;
  const window = 2 * MIB;
  const file: GrowingFile = {
    available: () => (lo === content.length ? lo : Math.max(0, hi - 1)),
    changed: () => new Promise<void>((r) => (wake = r)),
    copyOut: (pos, limit, into) => {
      if (pos < lo) return 0;
      const n = Math.min(limit, hi, pos + into.length) - pos;
      if (n <= 0) return 0;
      content.copy(into, 0, pos, pos + n);
      return n;
    },
    onDisk: () => lo,
    readsDirect: true,
  };
  const advance = async (): Promise<void> => {
    hi = Math.min(content.length, hi + step);
    const to = hi === content.length ? hi : Math.max(0, hi - window);
    if (to > lo) await fh.write(content, lo, to - lo, lo);
    lo = to;
    wake?.();
  };
  return { file, advance };
}

for (const start of [0, 777])
  test(`a reader behind the ring reads ahead of the socket, from byte ${start}: the exact bytes`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sender-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    t.true(directIoWorks(dir), `the filesystem of ${dir} takes direct I/O, as the cache's does here`);
    const content = randomBytes(40 * MIB + 12345);
    const fh = await open(join(dir, 'fill'), 'w+');
    t.teardown(() => fh.close());
    const writer = growing(content, fh, 1.5 * MIB);
    await writer.advance();
    let advancing = Promise.resolve();
    const got: Buffer[] = [];
    const out = new Writable({
      highWaterMark: MIB,
      write(chunk: Buffer, _enc, done) {
        got.push(Buffer.from(chunk));
        // The writer moves on while the client takes the next chunk (the socket keeps few buffers).
        advancing = advancing.then(() => writer.advance());
        setImmediate(done);
      },
    });
    const sent = await sendFile(fh, out, {
      start,
      end: undefined,
      length: () => content.length,
      growing: writer.file,
      writeTimeoutMs: 10_000,
    });
    await advancing;
    t.is(sent, content.length - start);
    const all = Buffer.concat(got);
    t.is(all.length, content.length - start);
    const firstWrong = all.findIndex((b, i) => b !== content[start + i]);
    t.is(firstWrong, -1, `the bytes sent are the content (first difference at ${firstWrong})`);
  });

/** A fill at its head: `bytes` available, kept in memory the sender copies from; more only on `grow`. */
function head(bytes: number) {
  const content = randomBytes(bytes + 4 * MIB);
  let available = bytes;
  let wake: (() => void) | undefined;
  const file: GrowingFile = {
    available: () => available,
    changed: () => new Promise<void>((r) => (wake = r)),
    copyOut: (pos, limit, into) => {
      const n = Math.min(limit, available, pos + into.length) - pos;
      if (n <= 0) return 0;
      content.copy(into, 0, pos, pos + n);
      return n;
    },
    onDisk: () => 0,
    readsDirect: false,
  };
  const grow = (n: number): void => {
    available = Math.min(content.length, available + n);
    wake?.();
  };
  return { file, grow };
}

async function scratchFile(t: import('ava').ExecutionContext): Promise<FileHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'file-sender-'));
  const fh = await open(join(dir, 'fill'), 'w+');
  t.teardown(async () => {
    await fh.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return fh;
}

test('a client that takes no bytes of a trickling fill is cut off after the write timeout', async (t) => {
  const fh = await scratchFile(t);
  const fill = head(200);
  // Small writes never fill a socket's buffer: this client takes them and never calls back.
  const out = new Writable({ highWaterMark: 1 << 30, write: () => undefined });
  const trickle = setInterval(() => fill.grow(200), 5);
  t.teardown(() => clearInterval(trickle));
  const started = performance.now();
  const sending = sendFile(fh, out, {
    start: 0,
    end: undefined,
    length: () => undefined,
    growing: fill.file,
    writeTimeoutMs: 300,
  });
  await t.throwsAsync(sending, { message: 'client took no bytes for 300 ms' });
  const ms = performance.now() - started;
  t.true(ms < 2000, `cut off after ${Math.round(ms)} ms`);
});

test('a send whose client left ends at once, while its fill has nothing new', async (t) => {
  const fh = await scratchFile(t);
  const fill = head(MIB);
  const out = new Writable({ highWaterMark: 1024, write: (_c, _e, done) => setTimeout(done, 1000) });
  setTimeout(() => out.destroy(), 100);
  const started = performance.now();
  await t.throwsAsync(
    sendFile(fh, out, {
      start: 0,
      end: undefined,
      length: () => undefined,
      growing: fill.file,
      writeTimeoutMs: 10_000,
    }),
    { message: 'client went away' },
  );
  const ms = performance.now() - started;
  t.true(ms < 1000, `ended ${Math.round(ms)} ms after it began`);
});
