import test from 'ava';
import { tagPage } from '../../../src/gate/tag-list.ts';

const body = Buffer.from(JSON.stringify({ name: 'demo/app', tags: ['b', 'a', 'd', 'c'] }));

test('without n the upstream list passes through as the upstream ordered it', (t) => {
  t.deepEqual(tagPage(body, 'r.test/demo/app', {}), { tags: ['b', 'a', 'd', 'c'] });
});

test('n and last page through the sorted list, naming where the next page starts', (t) => {
  t.deepEqual(tagPage(body, 'r.test/demo/app', { n: 2 }), { tags: ['a', 'b'], next: 'b' });
  t.deepEqual(tagPage(body, 'r.test/demo/app', { n: 2, last: 'b' }), { tags: ['c', 'd'] });
  t.deepEqual(tagPage(body, 'r.test/demo/app', { n: 0 }), { tags: [] });
});

test('an upstream that pages keeps its own cursor', (t) => {
  const page = tagPage(
    Buffer.from('{"tags":["x","y"]}'),
    'r.test/demo/app',
    { n: 2 },
    '</v2/demo/app/tags/list?last=y&n=2>; rel="next"',
  );
  t.deepEqual(page, { tags: ['x', 'y'], next: 'y' });
});

test('an invalid upstream body is an upstream error', (t) => {
  t.throws(() => tagPage(Buffer.from('<html>'), 'r.test/demo/app', {}), { message: /invalid JSON/ });
});
