import test from 'ava';
import { scanTagList, tagPage, TagListScanner, TAG_LIST_MAX_DEPTH } from '../../../src/gate/tag-list.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { MAX_MS } from '../property/arbitraries.ts';

const body = Buffer.from(JSON.stringify({ name: 'demo/app', tags: ['b', 'a', 'd', 'c'] }));

test('without n the upstream list passes through as the upstream ordered it', async (t) => {
  t.deepEqual(await tagPage(body, 'r.test/demo/app', {}), { tags: ['b', 'a', 'd', 'c'] });
});

test('n and last page through the sorted list, naming where the next page starts', async (t) => {
  t.deepEqual(await tagPage(body, 'r.test/demo/app', { n: 2 }), { tags: ['a', 'b'], next: 'b' });
  t.deepEqual(await tagPage(body, 'r.test/demo/app', { n: 2, last: 'b' }), { tags: ['c', 'd'] });
  t.deepEqual(await tagPage(body, 'r.test/demo/app', { n: 0 }), { tags: [] });
});

test('an upstream that pages keeps its own cursor', async (t) => {
  const page = await tagPage(
    Buffer.from('{"tags":["x","y"]}'),
    'r.test/demo/app',
    { n: 2 },
    '</v2/demo/app/tags/list?last=y&n=2>; rel="next"',
  );
  t.deepEqual(page, { tags: ['x', 'y'], next: 'y' });
});

test('an invalid upstream body is an upstream error', async (t) => {
  await t.throwsAsync(tagPage(Buffer.from('<html>'), 'r.test/demo/app', {}), { message: /invalid JSON/ });
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

test('a tag list over limits.tagListMaxTags is refused naming the key, not cut', async (t) => {
  const doc = Buffer.from(JSON.stringify({ tags: ['a', 'b', 'c'] }));
  t.deepEqual(await tagPage(doc, 'r.test/x', { n: 1 }, undefined, 3), { tags: ['a'], next: 'a' });
  const err = await t.throwsAsync(tagPage(doc, 'r.test/x', { n: 1 }, undefined, 2), { instanceOf: RegistryError });
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

// ---- fed in chunks (the body as it arrives) -------------------------------------------------------

/** The scan of `doc` written in the given pieces, stopping at the first verdict, as the gate feeds it. */
function scanInPieces(pieces: string[], max = 100) {
  const s = new TagListScanner(max);
  for (const p of pieces) {
    const early = s.write(Buffer.from(p));
    if (early) return early;
  }
  return s.end();
}

const PIECES: { name: string; pieces: string[]; max?: number }[] = [
  { name: 'a tag cut in two', pieces: ['{"tags":["lat', 'est","v1"]}'] },
  { name: 'the key cut in two', pieces: ['{"ta', 'gs":["a"]}'] },
  { name: 'an escape cut after its backslash', pieces: ['{"tags":["v\\', 'u0031"]}'] },
  { name: 'an escape cut inside its hex digits', pieces: ['{"tags":["v\\u00', '31"]}'] },
  { name: 'an escaped key cut', pieces: ['{"t\\u00', '61gs":["a"]}'] },
  { name: 'a number cut', pieces: ['{"n":-1', '2.5e', '+3,"tags":["a"]}'] },
  { name: 'a literal cut', pieces: ['{"x":tr', 'ue,"tags":[nu', 'll,"a"]}'] },
  { name: 'a tag of 128 bytes in 1-byte pieces', pieces: `{"tags":["${'a'.repeat(128)}"]}`.split('') },
  {
    name: 'a string too long to be a tag, over many pieces',
    pieces: ['{"tags":["', ...Array(20).fill('b'.repeat(100)), '","c"]}'],
  },
  { name: 'an escaped string too long to be a tag', pieces: ['{"tags":["', ...Array(300).fill('\\u0061'), '","c"]}'] },
  { name: 'a bad escape in the second piece', pieces: ['{"tags":["a\\', 'x"]}'] },
  { name: 'a truncated escape at the end', pieces: ['{"tags":["a\\u0', '0'] },
  { name: 'a number at the end of the document', pieces: ['-', '0.', '5'] },
  { name: 'a number cut before its digits end', pieces: ['1e'] },
  { name: 'over the cap in the second piece', pieces: ['{"tags":["a","b"', ',"c"]}'], max: 2 },
  { name: 'empty pieces', pieces: ['', '{"tags":[', '', '"a"]}', ''] },
];

for (const c of PIECES) {
  test(`TagListScanner: ${c.name}: the same verdict (and error position) as the whole document`, (t) => {
    t.deepEqual(scanInPieces(c.pieces, c.max), scanTagList(Buffer.from(c.pieces.join('')), c.max ?? 100));
  });
}

test('TagListScanner: a refusal is returned by the write that finds it, and every later one', (t) => {
  const s = new TagListScanner(1);
  t.is(s.write(Buffer.from('{"tags":["a"')), undefined);
  t.deepEqual(s.write(Buffer.from(',"b"')), { ok: false, why: 'too-many' });
  t.deepEqual(s.write(Buffer.from(']}')), { ok: false, why: 'too-many' });
  t.deepEqual(s.end(), { ok: false, why: 'too-many' });
  const bad = new TagListScanner(10);
  t.deepEqual(bad.write(Buffer.from('{"tags"')), undefined);
  t.deepEqual(bad.write(Buffer.from('}')), { ok: false, why: 'invalid', at: 7 });
});

test('TagListScanner: 100,000 tags of 128 bytes (13 MiB) in 64 KiB chunks: no chunk takes long, all tags are kept', (t) => {
  const tags = Array.from({ length: 100_000 }, (_, i) => `${String(i).padStart(6, '0')}${'x'.repeat(122)}`);
  const doc = Buffer.from(JSON.stringify({ name: 'x', tags }));
  const s = new TagListScanner(100_000);
  let worst = 0;
  for (let off = 0; off < doc.length; off += 65_536) {
    const started = performance.now();
    t.is(s.write(doc.subarray(off, off + 65_536)), undefined);
    worst = Math.max(worst, performance.now() - started);
  }
  const out = s.end();
  t.true(out.ok && out.tags.length === tags.length && out.tags[99_999] === tags[99_999]);
  // About 0.5 ms each on the CI machine; the bound leaves room for a GC pause on a loaded one (the
  // whole list scanned at once took 60-100 ms there).
  t.true(worst < MAX_MS, `the slowest 64 KiB chunk took ${worst.toFixed(1)} ms`);
});
