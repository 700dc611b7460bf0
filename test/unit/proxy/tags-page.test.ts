import test from 'ava';
import { paginateTags } from '../../../src/proxy/app.ts';
import type { Target } from '../../../src/proxy/route.ts';

const target: Target = {
  upstream: 'registry.test',
  repository: 'demo/app',
  clientName: 'registry.test/demo/app',
  endpoint: { kind: 'tags' },
};
const body = Buffer.from(JSON.stringify({ name: 'demo/app', tags: ['b', 'a', 'd', 'c'] }));

test('without n the upstream list passes through under the client name', (t) => {
  const page = paginateTags(body, target, new URLSearchParams());
  t.deepEqual(JSON.parse(page.body), { name: 'registry.test/demo/app', tags: ['b', 'a', 'd', 'c'] });
  t.is(page.next, undefined);
});

test('n and last page through the sorted list with a Link back to the proxy', (t) => {
  const first = paginateTags(body, target, new URLSearchParams({ n: '2' }));
  t.deepEqual(JSON.parse(first.body).tags, ['a', 'b']);
  t.is(first.next, '</v2/registry.test/demo/app/tags/list?n=2&last=b>; rel="next"');
  const second = paginateTags(body, target, new URLSearchParams({ n: '2', last: 'b' }));
  t.deepEqual(JSON.parse(second.body).tags, ['c', 'd']);
  t.is(second.next, undefined);
});

test('an upstream that paginates keeps its own cursor; ns is carried into the link', (t) => {
  const withNs = { ...target, clientName: 'demo/app', ns: 'registry.test' };
  const page = paginateTags(
    Buffer.from('{"name":"demo/app","tags":["x","y"]}'),
    withNs,
    new URLSearchParams({ n: '2' }),
    '</v2/demo/app/tags/list?last=y&n=2>; rel="next"',
  );
  t.deepEqual(JSON.parse(page.body).tags, ['x', 'y']);
  t.is(page.next, '</v2/demo/app/tags/list?n=2&last=y&ns=registry.test>; rel="next"');
});

test('a bad n or an invalid upstream body is an OCI error', (t) => {
  t.throws(() => paginateTags(body, target, new URLSearchParams({ n: '-1' })), { message: /n must be/ });
  t.throws(() => paginateTags(Buffer.from('<html>'), target, new URLSearchParams()), { message: /invalid JSON/ });
});
