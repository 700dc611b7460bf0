import test from 'ava';
import { skipBytes } from '../../../src/util/buffer-list.ts';

const list = [Buffer.from('abc'), Buffer.from('de'), Buffer.from('fghi')];
const cases: { skip: number; want: string[] }[] = [
  { skip: 0, want: ['abc', 'de', 'fghi'] },
  { skip: 1, want: ['bc', 'de', 'fghi'] },
  { skip: 3, want: ['de', 'fghi'] },
  { skip: 4, want: ['e', 'fghi'] },
  { skip: 8, want: ['i'] },
  { skip: 9, want: [] },
  { skip: 20, want: [] },
];
for (const c of cases) {
  test(`skipBytes: ${c.skip} bytes off ${list.join('|')}`, (t) => {
    t.deepEqual(
      skipBytes(list, c.skip).map((b) => b.toString()),
      c.want,
    );
  });
}

test('skipBytes returns views of the same memory, not copies', (t) => {
  const [first] = skipBytes(list, 1);
  t.is(first?.buffer, list[0]?.buffer);
});
