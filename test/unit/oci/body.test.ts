import test from 'ava';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { feedLimited, readLimited, TooLargeError } from '../../../src/oci/body.ts';

/** A body of the given chunks, and whether it was destroyed (read no further). */
function body(chunks: Buffer[]): { stream: Readable; destroyed: () => boolean } {
  const stream = Readable.from(chunks);
  return { stream, destroyed: () => stream.destroyed };
}

test('feedLimited: every byte, in order, in pieces of at most 64 KiB', async (t) => {
  const data = Buffer.alloc(200_000, 1);
  data.write('end', data.length - 3);
  const pieces: Buffer[] = [];
  await feedLimited(body([data.subarray(0, 10), data.subarray(10)]).stream, data.length, (p) => {
    pieces.push(p);
    return false;
  });
  t.true(pieces.every((p) => p.length <= 64 * 1024));
  t.true(Buffer.concat(pieces).equals(data));
});

test('feedLimited: a consumer that has seen enough stops the reading', async (t) => {
  const b = body([Buffer.from('one'), Buffer.from('two'), Buffer.from('three')]);
  const seen: string[] = [];
  await feedLimited(b.stream, 100, (p) => {
    seen.push(p.toString());
    return seen.length === 2;
  });
  t.deepEqual(seen, ['one', 'two']);
  t.true(b.destroyed());
});

test('feedLimited: over the limit, or declared over it, is TooLargeError and the body is destroyed', async (t) => {
  const over = body([Buffer.alloc(60), Buffer.alloc(60)]);
  await t.throwsAsync(
    feedLimited(over.stream, 100, () => false),
    { instanceOf: TooLargeError },
  );
  t.true(over.destroyed());
  const declared = body([Buffer.alloc(10)]);
  let fed = 0;
  await t.throwsAsync(
    feedLimited(declared.stream, 100, () => (fed++, false), 101),
    { instanceOf: TooLargeError },
  );
  t.is(fed, 0, 'nothing is read of a body declared too large');
  t.true(declared.destroyed());
});

test('feedLimited: a consumer that throws leaves the body destroyed', async (t) => {
  const b = body([Buffer.from('x'), Buffer.from('y')]);
  await t.throwsAsync(
    feedLimited(b.stream, 100, () => {
      throw new Error('bug');
    }),
    { message: 'bug' },
  );
  t.true(b.destroyed());
});

test('feedLimited: a buffered 16 MiB body is handed over with turns of the event loop between pieces', async (t) => {
  const data = Buffer.alloc(16 * 1024 * 1024, 0x20);
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 0);
  // A consumer doing about a millisecond of work per 64 KiB piece, as a scan of short tags does.
  await feedLimited(body([data]).stream, data.length, () => {
    const until = performance.now() + 1;
    while (performance.now() < until);
    return false;
  });
  clearInterval(ticker);
  // 256 pieces of 1 ms, a turn at least every 4 ms: the timer ran tens of times, not once at the end.
  t.true(ticks >= 20, `the timer ran ${ticks} times`);
});

test('readLimited: into one buffer of the declared size, hashed as it arrives', async (t) => {
  const data = Buffer.from('abcdefghij');
  const hash = createHash('sha256');
  const out = await readLimited(body([data.subarray(0, 4), data.subarray(4)]).stream, 100, data.length, hash);
  t.true(out.equals(data));
  t.is(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('readLimited: a stop that says enough leaves the body destroyed and the answer undefined', async (t) => {
  const b = body([Buffer.from('one'), Buffer.from('two'), Buffer.from('three')]);
  const shown: string[] = [];
  const out = await readLimited(
    b.stream,
    100,
    undefined,
    undefined,
    (c) => (shown.push(c.toString()), shown.length === 2),
  );
  t.is(out, undefined);
  t.deepEqual(shown, ['one', 'two']);
  t.true(b.destroyed());
  const all = await readLimited(body([Buffer.from('a'), Buffer.from('b')]).stream, 100, 2, undefined, () => false);
  t.is(all?.toString(), 'ab');
});
