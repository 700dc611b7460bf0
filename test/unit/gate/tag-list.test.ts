import test from 'ava';
import { scanTagList, tagPage, TAG_LIST_MAX_DEPTH } from '../../../src/gate/tag-list.ts';
import { RegistryError } from '../../../src/oci/errors.ts';

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

// ---- the scanner (limits.tagListMaxTags) -----------------------------------------------------------

const scan = (text: string, max = 100) => scanTagList(Buffer.from(text), max);

const SCANS: { name: string; doc: string; max?: number; out: ReturnType<typeof scanTagList> }[] = [
  {
    name: 'a plain list',
    doc: '{"name":"a","tags":["1.0","latest"]}',
    out: { ok: true, tags: ['1.0', 'latest'], dropped: 0 },
  },
  {
    name: 'whitespace everywhere',
    doc: ' \n{ "tags" :\t[ "a" , "b" ] }\r\n',
    out: { ok: true, tags: ['a', 'b'], dropped: 0 },
  },
  { name: 'no tags key', doc: '{"name":"a"}', out: { ok: true, tags: [], dropped: 0 } },
  { name: 'tags null', doc: '{"tags":null}', out: { ok: true, tags: [], dropped: 0 } },
  { name: 'tags not a list', doc: '{"tags":{"a":"b"}}', out: { ok: true, tags: [], dropped: 0 } },
  { name: 'a top-level array', doc: '["a","b"]', out: { ok: true, tags: [], dropped: 0 } },
  { name: 'a top-level scalar', doc: '-1.5e+3', out: { ok: true, tags: [], dropped: 0 } },
  { name: 'tags nested deeper do not count', doc: '{"x":{"tags":["a"]}}', out: { ok: true, tags: [], dropped: 0 } },
  {
    name: 'entries that are not valid tags are dropped',
    doc: `{"tags":["ok",".dot","-dash","","${'a'.repeat(129)}","sp ace","é",1,null,true,["a"],{"a":1},"${'b'.repeat(128)}"]}`,
    out: { ok: true, tags: ['ok', 'b'.repeat(128)], dropped: 11 },
  },
  {
    name: 'escapes are decoded',
    doc: '{"t\\u0061gs":["v\\u0031", "a\\nb", "\\u005f"]}',
    out: { ok: true, tags: ['v1', '_'], dropped: 1 },
  },
  { name: 'the last tags key wins', doc: '{"tags":["a"],"tags":["b"]}', out: { ok: true, tags: ['b'], dropped: 0 } },
  {
    name: 'the last tags key wins, even when it is no list',
    doc: '{"tags":["a"],"tags":5}',
    out: { ok: true, tags: [], dropped: 0 },
  },
  {
    name: 'exactly the cap',
    doc: '{"tags":["a","b","c"]}',
    max: 3,
    out: { ok: true, tags: ['a', 'b', 'c'], dropped: 0 },
  },
  { name: 'one over the cap', doc: '{"tags":["a","b","c","d"]}', max: 3, out: { ok: false, why: 'too-many' } },
  {
    name: 'invalid entries do not count against the cap',
    doc: '{"tags":["a",".","..","b"]}',
    max: 2,
    out: { ok: true, tags: ['a', 'b'], dropped: 2 },
  },
  { name: 'empty', doc: '', out: { ok: false, why: 'invalid', at: 0 } },
  { name: 'html', doc: '<html>', out: { ok: false, why: 'invalid', at: 0 } },
  { name: 'unterminated list', doc: '{"tags":["a"', out: { ok: false, why: 'invalid', at: 12 } },
  { name: 'unterminated string', doc: '{"tags":["a', out: { ok: false, why: 'invalid', at: 11 } },
  { name: 'trailing comma', doc: '{"tags":["a",]}', out: { ok: false, why: 'invalid', at: 13 } },
  { name: 'trailing garbage', doc: '{"tags":[]} x', out: { ok: false, why: 'invalid', at: 12 } },
  { name: 'mismatched brackets', doc: '{"tags":["a"}}', out: { ok: false, why: 'invalid', at: 12 } },
  { name: 'a key without a value', doc: '{"tags"}', out: { ok: false, why: 'invalid', at: 7 } },
  { name: 'a bad escape', doc: '{"tags":["\\x"]}', out: { ok: false, why: 'invalid', at: 10 } },
  { name: 'a control character in a string', doc: '{"tags":["a\tb"]}', out: { ok: false, why: 'invalid', at: 11 } },
  { name: 'a leading zero', doc: '{"n":01}', out: { ok: false, why: 'invalid', at: 6 } },
  { name: 'a bare word', doc: '{"n":nul}', out: { ok: false, why: 'invalid', at: 8 } },
];

for (const c of SCANS) {
  test(`scanTagList: ${c.name}`, (t) => {
    t.deepEqual(scan(c.doc, c.max), c.out);
  });
}

test('scanTagList: nesting past TAG_LIST_MAX_DEPTH is refused without recursion; at the limit it is read', (t) => {
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  t.is(scan(`{"tags":["a"],"x":${nested(TAG_LIST_MAX_DEPTH - 1)}}`).ok, true);
  t.like(scan(`{"tags":["a"],"x":${nested(TAG_LIST_MAX_DEPTH)}}`), { ok: false, why: 'invalid' });
  t.like(scanTagList(Buffer.from(nested(5_000_000)), 10), { ok: false, why: 'invalid' });
});

test('a tag list over limits.tagListMaxTags is refused naming the key, not cut', (t) => {
  const doc = Buffer.from(JSON.stringify({ tags: ['a', 'b', 'c'] }));
  t.deepEqual(tagPage(doc, 'r.test/x', { n: 1 }, undefined, 3), { tags: ['a'], next: 'a' });
  const err = t.throws(() => tagPage(doc, 'r.test/x', { n: 1 }, undefined, 2), { instanceOf: RegistryError });
  t.is(err?.failure, 'upstream');
  t.is(err?.code, 'SIZE_INVALID');
  t.regex(err?.message ?? '', /more than 2 tags.*limits\.tagListMaxTags/);
});

test('a 16 MiB list of a million short tags is scanned in bounded time and refused past the cap', (t) => {
  const tags = Array.from({ length: 1_400_000 }, (_, i) => `t${i}`);
  const doc = Buffer.from(JSON.stringify({ name: 'x', tags }));
  const started = performance.now();
  t.like(scanTagList(doc, 100_000), { ok: false, why: 'too-many' });
  const all = scanTagList(doc, 2_000_000);
  const ms = performance.now() - started;
  t.true(all.ok && all.tags.length === tags.length);
  t.true(ms < 5_000, `${doc.length} bytes scanned twice in ${ms.toFixed(0)} ms`);
});
