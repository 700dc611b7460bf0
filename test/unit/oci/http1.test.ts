import test from 'ava';
import { ChunkedDecoder, parseHead } from '../../../src/oci/http1.ts';

const head = (s: string) => parseHead(Buffer.from(s, 'latin1'), 1024);

test('a head: status, headers lower-cased and repeated ones kept, where the body starts, how it ends', (t) => {
  const r = head('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello');
  t.like(r, { kind: 'head', status: 200, bytes: 54, framing: { kind: 'length', length: 5 }, reusable: true });
  t.deepEqual(r.kind === 'head' && r.headers, { 'content-length': '5', 'x-a': ['1', '2'] });
});

test('headers named like Object members are headers like any other', (t) => {
  const r = head('HTTP/1.1 200 OK\r\n__proto__: x\r\nconstructor: y\r\nContent-Length: 0\r\n\r\n');
  t.is(r.kind, 'head');
  if (r.kind !== 'head') return;
  t.is(Object.getPrototypeOf(r.headers), null);
  t.is(r.headers['__proto__'], 'x');
  t.is(r.headers['constructor'], 'y');
  t.notThrows(() => structuredClone(r.headers));
});

test('framing and reuse, by table', (t) => {
  const rows: [string, object][] = [
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { framing: { kind: 'chunked' }, reusable: true }],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n', { framing: { kind: 'chunked' } }],
    ['HTTP/1.1 200 OK\r\n\r\n', { framing: { kind: 'close' }, reusable: false }],
    ['HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n', { framing: { kind: 'length', length: 3 } }],
    ['HTTP/1.1 200 OK\r\nContent-Length:\t 3 \t\r\n\r\n', { framing: { kind: 'length', length: 3 } }],
    ['HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n', { reusable: false }],
    ['HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n', { reusable: false }],
    ['HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n', { reusable: true }],
    ['HTTP/1.1 204 No Content\r\n\r\n', { framing: { kind: 'length', length: 0 }, reusable: true }],
    ['HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n', { framing: { kind: 'length', length: 0 } }],
    ['HTTP/1.1 307 Temporary Redirect\r\nLocation: https://x/y\r\nContent-Length: 0\r\n\r\n', { status: 307 }],
    ['HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n', { status: 404 }],
  ];
  for (const [text, want] of rows) t.like(head(text), { kind: 'head', ...want }, JSON.stringify(text));
});

test('what could be read two ways, or not at all, is refused with why', (t) => {
  const rows: [string, RegExp][] = [
    ['HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', /both a Content-Length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', /other than chunked/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n', /other than chunked/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n', /ambiguous Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n', /Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n', /Content-Length/],
    ['HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n', /bare CR/],
    ['HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n', /bare CR, LF/],
    ['HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n', /folded/],
    ['HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n', /malformed header line/],
    ['HTTP/1.1 200 OK\r\n: a\r\n\r\n', /malformed header line/],
    ['HTTP/2 200\r\n\r\n', /status line/],
    ['HTTP/1.1 099 Low\r\n\r\n', /status line/],
    ['HTTP/1.1 2000 OK\r\n\r\n', /status line/],
    ['ICY 200 OK\r\n\r\n', /status line/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\n', /empty Transfer-Encoding/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n', /empty Transfer-Encoding/],
    ['HTTP/1.1 200 OK\r\nContent-Length: \xa05\r\n\r\n', /Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\x0b\r\n\r\n', /control character/],
    ['HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n', /control character/],
  ];
  for (const [text, reason] of rows) {
    const r = head(text);
    t.is(r.kind, 'invalid', JSON.stringify(text));
    if (r.kind === 'invalid') t.regex(r.reason, reason);
  }
});

test('a head is incomplete until its blank line, and refused once longer than the bound', (t) => {
  t.deepEqual(head('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'), { kind: 'incomplete' });
  t.deepEqual(parseHead(Buffer.from('HTTP/1.1 200 OK\r\n'), 1024), { kind: 'incomplete' });
  const long = `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(2000)}`;
  t.like(head(long), { kind: 'invalid', reason: 'a response head longer than 1024 bytes' });
  t.like(head(`${long}\r\n\r\n`), { kind: 'invalid' });
  t.like(parseHead(Buffer.from('HTTP/1.1 200 OK\r\nA: b\r\n\r\n'), 25), { kind: 'head' });
  t.like(parseHead(Buffer.from('HTTP/1.1 200 OK\r\nA: b\r\n\r\n'), 24), { kind: 'invalid' });
});

/** Decodes `wire` fed in pieces of `step` bytes; the data, and the bytes left after the end. */
function decode(wire: string, step: number): { data: string; rest: number; done: boolean } {
  const d = new ChunkedDecoder();
  const buf = Buffer.from(wire, 'latin1');
  let data = '';
  let rest = 0;
  for (let i = 0; i < buf.length; i += step) {
    const piece = buf.subarray(i, i + step);
    const took = d.feed(piece, (v) => (data += v.toString('latin1')));
    if (took < piece.length) {
      rest = buf.length - i - took;
      break;
    }
  }
  return { data, rest, done: d.done };
}

test('chunked framing gives the same data however the wire is cut', (t) => {
  const rows: [string, string, number][] = [
    ['5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'hello world', 0],
    ['A;name=value\r\n0123456789\r\n0\r\n\r\n', '0123456789', 0],
    ['3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n', 'abc', 0],
    ['2\r\nab\r\n0\r\n\r\nEXTRA', 'ab', 5],
    ['0\r\n\r\n', '', 0],
  ];
  for (const [wire, want, rest] of rows)
    for (const step of [1, 2, 3, 7, 1000])
      t.deepEqual(decode(wire, step), { data: want, rest, done: true }, `${wire} / ${step}`);
});

test('malformed chunked framing throws, naming what is wrong', (t) => {
  const rows: [string, RegExp][] = [
    ['zz\r\n', /malformed chunk size/],
    ['-1\r\n', /malformed chunk size/],
    ['\r\n', /malformed chunk size/],
    ['1234567890123456\r\n', /malformed chunk size/],
    ['3\nabc\r\n', /without CRLF/],
    ['3\r\nabcd\r\n0\r\n\r\n', /longer than its size/],
    ['3\r\nabc\n0\r\n\r\n', /without CRLF/],
    [`1;${'x'.repeat(5000)}\r\n`, /size line longer/],
    [`0\r\n${'X: y\r\n'.repeat(3000)}\r\n`, /trailers longer/],
  ];
  for (const [wire, error] of rows)
    for (const step of [1, 5, 10_000])
      t.throws(() => decode(wire, step), { message: error }, `${wire.slice(0, 30)} / ${step}`);
});

test('an unfinished chunked body is not done', (t) => {
  t.deepEqual(decode('5\r\nhel', 2), { data: 'hel', rest: 0, done: false });
  t.deepEqual(decode('5\r\nhello\r\n0\r\n', 4), { data: 'hello', rest: 0, done: false });
});
