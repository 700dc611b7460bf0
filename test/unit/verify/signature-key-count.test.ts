// The streaming shortcut of the DSSE signature budget: SignatureKeyCount counts `"sig"` keys as an
// envelope arrives, across piece boundaries, exactly as the whole-envelope count does.
import test from 'ava';
import fc from 'fast-check';
import { SignatureKeyCount } from '../../../src/verify/cosign-layer.ts';

/** The whole-envelope count: non-overlapping occurrences, left to right (cosign-layer's countOf). */
function whole(text: string): number {
  let n = 0;
  for (let i = text.indexOf('"sig"'); i !== -1; i = text.indexOf('"sig"', i + 5)) n++;
  return n;
}

/** Whether the pieces, fed in order, ever report more than `max` keys. */
function over(pieces: string[], max: number): boolean {
  const count = new SignatureKeyCount(max);
  return pieces.some((p) => count.over(Buffer.from(p, 'latin1')));
}

const CASES: { name: string; pieces: string[]; max: number; over: boolean }[] = [
  { name: 'at the limit', pieces: ['{"signatures":[{"sig":"a"},{"sig":"b"}]}'], max: 2, over: false },
  { name: 'one over', pieces: ['{"signatures":[{"sig":"a"},{"sig":"b"},{"sig":"c"}]}'], max: 2, over: true },
  { name: 'a key cut after its first byte', pieces: ['{"sig":1,"', 'sig":2'], max: 1, over: true },
  { name: 'a key cut before its last byte', pieces: ['{"sig":1,"sig', '":2'], max: 1, over: true },
  { name: 'a key over 1-byte pieces', pieces: '"sig""sig"'.split(''), max: 1, over: true },
  { name: 'overlapping keys count once, as whole', pieces: ['"sig"si', 'g"'], max: 1, over: false },
  { name: 'no key at all', pieces: ['"si', 'x"', 'si', 'g'], max: 0, over: false },
  { name: 'empty pieces between', pieces: ['"s', '', 'ig"', '', '"sig"'], max: 1, over: true },
];

for (const c of CASES) {
  test(`SignatureKeyCount: ${c.name}`, (t) => {
    t.is(over(c.pieces, c.max), c.over);
    t.is(c.over, whole(c.pieces.join('')) > c.max, 'as the whole envelope counts');
  });
}

test('SignatureKeyCount: over exactly when the whole envelope has more keys, however it is cut', (t) => {
  const text = fc
    .array(fc.constantFrom('"', 's', 'i', 'g', '"sig"', 'x', '"si', 'ig"'), { maxLength: 40 })
    .map((a) => a.join(''));
  fc.assert(
    fc.property(text, fc.array(fc.nat(), { maxLength: 8 }), fc.nat(6), (s, cuts, max) => {
      const points = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b);
      const pieces = [...points, s.length].map((to, k, all) => s.slice(k === 0 ? 0 : all[k - 1], to));
      t.is(over(pieces, max), whole(s) > max, `${s} cut at ${points.join(',')}`);
    }),
    { numRuns: 2_000 },
  );
});
