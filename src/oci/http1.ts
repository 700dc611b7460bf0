// The parts of an HTTP/1.1 response that blob GETs on the proxy's own connections read
// (own-connections.ts): the head and the chunked framing. Pure and strict: whatever an upstream
// sends that could be read two ways (two lengths, a length and a coding, folded or bare-CR lines)
// is refused, never guessed at.

export type Headers = Record<string, string | string[]>;

/** How the body after a head ends: after `length` bytes, at the last chunk, or when the upstream closes. */
export type Framing = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

export type HeadResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  | {
      kind: 'head';
      status: number;
      headers: Headers;
      /** Bytes of the head, its blank line included: the body starts there. */
      bytes: number;
      framing: Framing;
      /** The connection may carry another request once this body ended. */
      reusable: boolean;
    };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether `name` is an HTTP token (a header name, a coding). */
export function isToken(name: string): boolean {
  return TOKEN.test(name);
}
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: [^\r\n]*)?$/;
const END = Buffer.from('\r\n\r\n');

/** One response head at the start of `buf` (a GET's: never HEAD), once all of it is there; at most `maxBytes`. */
export function parseHead(buf: Buffer, maxBytes: number): HeadResult {
  const end = buf.indexOf(END);
  if (end < 0) {
    return buf.length >= maxBytes
      ? { kind: 'invalid', reason: `a response head longer than ${maxBytes} bytes` }
      : { kind: 'incomplete' };
  }
  if (end + END.length > maxBytes) return { kind: 'invalid', reason: `a response head longer than ${maxBytes} bytes` };
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const statusLine = STATUS_LINE.exec(lines[0] as string);
  if (!statusLine)
    return { kind: 'invalid', reason: `a malformed status line ${JSON.stringify(lines[0]?.slice(0, 80))}` };
  const minor = Number(statusLine[1]);
  const status = Number(statusLine[2]);
  // No prototype: a header named __proto__ or constructor is a header like any other.
  const headers: Headers = Object.create(null) as Headers;
  for (const line of lines.slice(1)) {
    if (/[\r\n\0]/.test(line)) return { kind: 'invalid', reason: 'a header line with a bare CR, LF or NUL' };
    if (/[\x01-\x08\x0b-\x1f\x7f]/.test(line))
      return { kind: 'invalid', reason: 'a header line with a control character' };
    if (line.startsWith(' ') || line.startsWith('\t')) return { kind: 'invalid', reason: 'a folded header line' };
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!isToken(name))
      return { kind: 'invalid', reason: `a malformed header line ${JSON.stringify(line.slice(0, 80))}` };
    const key = name.toLowerCase();
    const value = ows(line.slice(colon + 1));
    const had = headers[key];
    headers[key] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  const framing = framingOf(status, headers);
  if ('reason' in framing) return { kind: 'invalid', reason: framing.reason };
  const connection = listOf(headers['connection']);
  const reusable =
    framing.kind !== 'close' && !connection.includes('close') && (minor === 1 || connection.includes('keep-alive'));
  return { kind: 'head', status, headers, bytes: end + END.length, framing, reusable };
}

/** Without the spaces and tabs around it: String#trim would take NBSP, VT and FF too, which HTTP does not. */
function ows(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, '');
}

function listOf(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => ows(s).toLowerCase())
    .filter((s) => s !== '');
}

function framingOf(status: number, headers: Headers): Framing | { reason: string } {
  if (status < 200 || status === 204 || status === 304) return { kind: 'length', length: 0 };
  const codings = listOf(headers['transfer-encoding']);
  const lengths = headers['content-length'];
  if (headers['transfer-encoding'] !== undefined) {
    if (codings.length === 0) return { reason: 'an empty Transfer-Encoding' };
    if (lengths !== undefined) return { reason: 'both a Content-Length and a Transfer-Encoding' };
    if (codings.length !== 1 || codings[0] !== 'chunked')
      return { reason: `a Transfer-Encoding other than chunked (${codings.join(', ').slice(0, 80)})` };
    return { kind: 'chunked' };
  }
  if (lengths === undefined) return { kind: 'close' };
  const values = new Set((Array.isArray(lengths) ? lengths : [lengths]).flatMap((s) => s.split(',')).map(ows));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !/^[0-9]{1,15}$/.test(only))
    return { reason: `a malformed or ambiguous Content-Length ${JSON.stringify(String(lengths).slice(0, 80))}` };
  return { kind: 'length', length: Number(only) };
}

/** Bounds on what the chunked framing itself may hold (not the data). */
const MAX_SIZE_LINE = 4096;
const MAX_TRAILERS = 16 * 1024;

type ChunkState = 'size' | 'data' | 'data-end' | 'trailers' | 'done';

/**
 * Reads the chunked framing incrementally: `feed` hands the data in it to `data` as views of the
 * buffer fed (valid only during that call) and returns how many bytes it took, which is less than
 * all only once the last chunk and its trailers ended. Throws on anything malformed.
 */
export class ChunkedDecoder {
  #state: ChunkState = 'size';
  #line = '';
  #left = 0;
  #trailerBytes = 0;

  get done(): boolean {
    return this.#state === 'done';
  }

  feed(buf: Buffer, data: (view: Buffer) => void): number {
    let i = 0;
    while (i < buf.length && this.#state !== 'done') {
      if (this.#state === 'data') {
        const n = Math.min(this.#left, buf.length - i);
        data(buf.subarray(i, i + n));
        i += n;
        this.#left -= n;
        if (this.#left === 0) this.#state = 'data-end';
        continue;
      }
      const lf = buf.indexOf(0x0a, i);
      const piece = buf.toString('latin1', i, lf < 0 ? buf.length : lf + 1);
      i = lf < 0 ? buf.length : lf + 1;
      this.#line += piece;
      if (this.#state === 'trailers') {
        this.#trailerBytes += piece.length;
        if (this.#trailerBytes > MAX_TRAILERS) throw new Error(`chunked trailers longer than ${MAX_TRAILERS} bytes`);
      } else if (this.#line.length > MAX_SIZE_LINE) {
        throw new Error(`a chunk size line longer than ${MAX_SIZE_LINE} bytes`);
      }
      if (lf < 0) break;
      const line = this.#line;
      this.#line = '';
      if (!line.endsWith('\r\n') || line.slice(0, -2).includes('\r'))
        throw new Error('a chunked framing line without CRLF');
      const text = line.slice(0, -2);
      if (this.#state === 'data-end') {
        if (text !== '') throw new Error('chunk data longer than its size');
        this.#state = 'size';
      } else if (this.#state === 'size') {
        const m = /^([0-9A-Fa-f]{1,15})(?:[ \t]*;[^\0]*)?$/.exec(text);
        if (!m) throw new Error(`a malformed chunk size ${JSON.stringify(text.slice(0, 40))}`);
        this.#left = Number.parseInt(m[1] as string, 16);
        this.#state = this.#left === 0 ? 'trailers' : 'data';
      } else if (text === '') {
        this.#state = 'done';
      }
    }
    return i;
  }
}
