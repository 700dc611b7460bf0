import test from 'ava';
import { ALIGN_SLACK, copyInto, SharedRing } from '../../../src/blobs/ring.ts';

const bytes = (from: number, n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) % 251));

test('append never overwrites a byte not yet on disk, and takes what fits', (t) => {
  const cases: { written: number; chunk: number; took: number }[] = [
    { written: 0, chunk: 6, took: 6 },
    { written: 0, chunk: 6, took: 2 }, // 6 held, none on disk: 2 slots left of 8
    { written: 3, chunk: 6, took: 3 }, // 3 on disk free 3 slots
    { written: 11, chunk: 10, took: 8 }, // all on disk: the whole ring
  ];
  const ring = new SharedRing(8);
  let hi = 0;
  for (const c of cases) {
    const took = ring.append(bytes(hi, c.chunk), c.written);
    t.is(took, c.took, JSON.stringify(c));
    hi += took;
    t.is(ring.hi, hi);
    t.true(ring.hi - ring.lo <= ring.capacity);
    t.true(ring.lo <= c.written, 'lo never passes the disk');
  }
});

test('views and copies across the wrap return the exact bytes; a copy of a position overwritten is refused', (t) => {
  const ring = new SharedRing(8);
  t.is(ring.append(bytes(0, 6), 0), 6);
  t.is(ring.append(bytes(6, 5), 6), 5); // wraps: holds 3..11
  t.is(ring.lo, 3);
  t.deepEqual(Buffer.concat(ring.views(4, 11)), bytes(4, 7));
  t.deepEqual(ring.views(2, 5), [], 'before lo: nothing');
  const into = Buffer.alloc(16);
  t.is(ring.copyOut(5, 100, into), 6);
  t.deepEqual(into.subarray(0, 6), bytes(5, 6));
  t.is(ring.copyOut(5, 7, into), 2, 'limited by limit');
  t.is(ring.copyOut(2, 100, into), 0, 'behind the ring: read the file');
  t.is(ring.copyOut(11, 100, into), 0, 'nothing held there yet');
  t.is(ring.copyOut(3, 100, Buffer.alloc(4)), 4, 'limited by the buffer');
});

test('a reader on the other side of a shared buffer sees what was appended', (t) => {
  const writer = new SharedRing(1024);
  const reader = new SharedRing(writer.buffer);
  t.is(reader.capacity, 1024);
  writer.append(bytes(0, 700), 0);
  const into = Buffer.alloc(1024);
  t.is(reader.copyOut(0, Infinity, into), 700);
  t.deepEqual(into.subarray(0, 700), bytes(0, 700));
});

test('a reader that waits is told; one that finds more already does not wait', (t) => {
  const ring = new SharedRing(16);
  t.false(ring.takeWaiting(), 'nobody waits yet');
  t.true(ring.willWait(0));
  ring.append(bytes(0, 4), 0);
  t.true(ring.takeWaiting(), 'the writer sees the waiting reader');
  t.false(ring.takeWaiting(), 'and clears the flag');
  t.false(ring.willWait(0), 'more than it saw is there: no wait');
  t.false(ring.takeWaiting(), 'and no flag left behind');
});

test('copyInto copies exactly [from, to) to `at`, into and out of shared memory, for every length down to none', (t) => {
  const shared = Buffer.from(new SharedArrayBuffer(16));
  const cases: { from: number; to: number; at: number }[] = [
    { from: 0, to: 16, at: 0 }, // a whole source: the case Buffer#copy sends to TypedArray#set
    { from: 0, to: 1, at: 15 },
    { from: 5, to: 9, at: 2 },
    { from: 3, to: 3, at: 4 }, // nothing
  ];
  for (const c of cases) {
    const src = bytes(c.from * 7 + 1, 16);
    shared.fill(0);
    copyInto(shared, c.at, src, c.from, c.to);
    const want = Buffer.alloc(16);
    src.copy(want, c.at, c.from, c.to);
    t.deepEqual(shared, want, JSON.stringify(c));
    const back = Buffer.alloc(16);
    copyInto(back, c.at, shared, c.at, c.at + (c.to - c.from));
    t.deepEqual(back.subarray(c.at, c.at + c.to - c.from), src.subarray(c.from, c.to), `back: ${JSON.stringify(c)}`);
  }
});

test('a ring placed by its maker keeps the data where it said, and the other side finds it there', (t) => {
  const writer = new SharedRing(4096, (_buffer, from, to) => {
    t.is(to - from, ALIGN_SLACK, 'the place is chosen within the slack after the header');
    return from + 100;
  });
  writer.append(bytes(0, 300), 0);
  const reader = new SharedRing(writer.buffer);
  t.is(reader.capacity, 4096);
  const into = Buffer.alloc(300);
  t.is(reader.copyOut(0, Infinity, into), 300);
  t.deepEqual(into, bytes(0, 300));
  t.deepEqual(Buffer.concat(writer.views(0, 300)), bytes(0, 300));
  t.throws(() => new SharedRing(4096, (_buffer, from) => from - 1), { message: /outside/ });
  t.throws(() => new SharedRing(4096, (_buffer, _from, to) => to + 1), { message: /outside/ });
});
