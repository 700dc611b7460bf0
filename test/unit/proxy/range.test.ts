import test from 'ava';
import { parseRange, type RangeRequest } from '../../../src/proxy/range.ts';

const cases: [string | undefined, number, RangeRequest][] = [
  [undefined, 100, { kind: 'whole' }],
  ['bytes=0-', 100, { kind: 'range', range: { start: 0, end: 99 } }],
  ['bytes=5-', 100, { kind: 'range', range: { start: 5, end: 99 } }],
  ['bytes=5-9', 100, { kind: 'range', range: { start: 5, end: 9 } }],
  ['bytes=90-200', 100, { kind: 'range', range: { start: 90, end: 99 } }],
  ['bytes=-10', 100, { kind: 'range', range: { start: 90, end: 99 } }],
  ['bytes=-500', 100, { kind: 'range', range: { start: 0, end: 99 } }],
  ['bytes=100-', 100, { kind: 'unsatisfiable' }],
  ['bytes=-0', 100, { kind: 'unsatisfiable' }],
  ['bytes=0-', 0, { kind: 'unsatisfiable' }],
  // Invalid or multi-range specs are ignored, as RFC 9110 allows: the whole blob is served.
  ['bytes=9-5', 100, { kind: 'whole' }],
  ['bytes=0-1,5-6', 100, { kind: 'whole' }],
  ['items=0-1', 100, { kind: 'whole' }],
  ['bytes=-', 100, { kind: 'whole' }],
  ['bytes=abc', 100, { kind: 'whole' }],
];

for (const [header, size, expected] of cases) {
  test(`Range ${JSON.stringify(header)} of ${size} bytes`, (t) => {
    t.deepEqual(parseRange(header, size), expected);
  });
}
