import test from 'ava';
import { tagAction } from '../../../src/gate/tags.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

test('an unmoved or unresolvable tag serves the pin in every mode', (t) => {
  for (const mode of ['pin', 'deny', 'follow'] as const) {
    t.deepEqual(tagAction(A, A, mode), { action: 'serve-pinned' });
    t.deepEqual(tagAction(A, undefined, mode), { action: 'serve-pinned' });
  }
});

test('a moved tag: pin serves the pin and reports drift, deny refuses, follow tries the new digest', (t) => {
  t.deepEqual(tagAction(A, B, 'pin'), { action: 'serve-pinned', drift: B });
  t.deepEqual(tagAction(A, B, 'deny'), { action: 'deny-moved', from: A, to: B });
  t.deepEqual(tagAction(A, B, 'follow'), { action: 'try-follow', from: A, to: B });
});
