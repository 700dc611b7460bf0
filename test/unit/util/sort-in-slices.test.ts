import test from 'ava';
import fc from 'fast-check';
import { sortInSlices } from '../../../src/util/sort-in-slices.ts';
import { MAX_MS } from '../property/arbitraries.ts';

const CASES: { name: string; items: string[]; slice?: number }[] = [
  { name: 'empty', items: [] },
  { name: 'one', items: ['a'] },
  { name: 'within one slice', items: ['c', 'a', 'b'] },
  { name: 'several slices, odd run count', items: ['e', 'd', 'c', 'b', 'a', 'f', 'g'], slice: 2 },
  { name: 'duplicates across slices', items: ['b', 'a', 'b', 'a', 'b', 'a'], slice: 2 },
  { name: 'code-unit order, as Array#sort', items: ['a', 'B', '_', '1', 'é', 'A', 'b.1', 'b-1'], slice: 3 },
];

for (const c of CASES) {
  test(`sortInSlices: ${c.name}`, async (t) => {
    const copy = [...c.items];
    t.deepEqual(await sortInSlices(c.items, c.slice), [...c.items].sort());
    t.deepEqual(c.items, copy, 'the input is left as it is');
  });
}

test('sortInSlices: what Array#sort gives, for any list and slice', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ maxLength: 4 }), { maxLength: 200 }),
      fc.integer({ min: 1, max: 50 }),
      async (items, slice) => {
        t.deepEqual(await sortInSlices(items, slice), [...items].sort());
      },
    ),
  );
});

test('sortInSlices: 100,000 shuffled tags sorted without a long task', async (t) => {
  const tags = Array.from({ length: 100_000 }, (_, i) => `${String(i).padStart(6, '0')}${'x'.repeat(122)}`);
  for (let i = tags.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [tags[i], tags[j]] = [tags[j] as string, tags[i] as string];
  }
  // The longest gap between two ticks of a 1 ms interval while the sort runs: what other requests wait.
  let last = performance.now();
  let worst = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  const sorted = await sortInSlices(tags);
  clearInterval(ticker);
  t.deepEqual(sorted, [...tags].sort());
  t.log(`longest event-loop gap while sorting: ${worst.toFixed(1)} ms`);
  // One Array#sort of them held the loop 100-370 ms on the CI machine; sliced, the gaps are a few ms
  // alone, and this bound leaves room for a GC pause and the other suites' load on 2 cores.
  t.true(worst < MAX_MS, `the loop was held ${worst.toFixed(1)} ms`);
});
