// One page of a repository's tags from the upstream's answer. Registries that ignore `n`/`last`
// (distribution 2.8 does for tags) are paged here, in the spec's lexical order; an upstream that
// pages itself keeps its own cursor. Pure (no I/O; paging yields to the event loop while it sorts).
//
// The upstream's list is scanned, not parsed: JSON.parse of a 16 MiB list of short tags builds a
// million strings (about +120 MiB of RSS) to keep a page of them. The scanner checks that the
// bytes are one JSON document and keeps only the valid tags of the top-level `tags` array, at most
// `maxTags` of them; everything else is stepped over without building anything.
//
// It is fed the body chunk by chunk as it arrives and keeps its place between chunks (a string, a
// number or an escape may be cut anywhere): the list is never held whole, and scanning 16 MiB in
// one go (0.13-0.3 s) no longer holds the event loop. Work per chunk is linear in its bytes.
import { RegistryError } from '../oci/errors.ts';
import { sortInSlices } from '../util/sort-in-slices.ts';
import { DEFAULT_TAG_LIST_MAX_TAGS } from './limits.ts';
import type { TagPage } from './types.ts';

/** Arrays and objects nested deeper than this are not a tag list pullgate reads (a tag list nests 2). */
export const TAG_LIST_MAX_DEPTH = 64;
/** The longest tag (distribution grammar) is 128 bytes; escaped (`\u0061`), at most six times that. */
const MAX_ESCAPED_TAG = 6 * 128;
/** An escaped key longer than this (quotes included) is not `tags` (24 bytes escaped, 26 quoted). */
const MAX_ESCAPED_KEY = 64;

export type TagScan =
  | { ok: true; tags: string[]; /** entries of the array that are not valid tags (dropped) */ dropped: number }
  | { ok: false; why: 'invalid'; at: number }
  | { ok: false; why: 'too-many' };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}
/** Byte classes for strings: a tag character (`[A-Za-z0-9_.-]`), one that may also start a tag, or special. */
const TAG = 1;
const FIRST = 2;
const SPECIAL = 4;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alnum = isDigit(c) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
  if (alnum) CLASS[c] = TAG | FIRST;
  else if (c === 0x2e || c === 0x2d) CLASS[c] = TAG;
  else if (c < 0x20 || c === QUOTE || c === BACKSLASH) CLASS[c] = SPECIAL;
}
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

class Invalid extends Error {
  readonly at: number;
  constructor(at: number) {
    super('invalid JSON');
    this.at = at;
  }
}
class TooMany extends Error {}

/**
 * The valid tags of a tag list document's top-level `tags` array (as JSON.parse would read it: the
 * last `tags` key wins, a `tags` that is not an array lists nothing, entries that are not strings
 * or not valid tags are dropped). Invalid JSON, or nesting deeper than TAG_LIST_MAX_DEPTH, is
 * `invalid`; more than `maxTags` valid tags is `too-many`, found as soon as the scan passes it.
 * The whole document at once; TagListScanner takes it in chunks.
 */
export function scanTagList(bytes: Uint8Array, maxTags: number): TagScan {
  const s = new TagListScanner(maxTags);
  return s.write(bytes) ?? s.end();
}

// Where the scanner is between two bytes.
/** A value is next. */
const VALUE = 0;
/** Just past `[`: `]` or a value. */
const ARRAY_FIRST = 1;
/** Just past `{`: `}` or a key. */
const OBJECT_FIRST = 2;
/** A key is next (past `,` in an object). */
const KEY = 3;
/** Past a key: `:`. */
const COLON = 4;
/** Past a value: `,` or the closing bracket, or (at the top) only whitespace to the end. */
const AFTER = 5;
const STRING = 6;
const LITERAL = 7;
const NUMBER = 8;

// Inside a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. The terminal ones may end it.
const N_MINUS = 0;
const N_ZERO = 1;
const N_INT = 2;
const N_DOT = 3;
const N_FRAC = 4;
const N_E = 5;
const N_ESIGN = 6;
const N_EXP = 7;
const NUMBER_ENDS = [false, true, true, false, true, false, false, true];

// What a string is to the scanner: stepped over, a key of the top-level object, or an entry of the tags array.
const ROLE_NONE = 0;
const ROLE_KEY = 1;
const ROLE_ENTRY = 2;

/** 0: array, 1: object. */
const ARRAY = 0;
const OBJECT = 1;

/**
 * scanTagList over a document given in chunks: write() each chunk as it arrives (it returns the
 * verdict as soon as it is a refusal, and the rest need not be read), then end(). Memory is the
 * tags kept, a stack of TAG_LIST_MAX_DEPTH and one string of a tag's escaped length: a string cut
 * by a chunk boundary keeps only what a tag could be.
 */
export class TagListScanner {
  readonly #max: number;
  #tags: string[] = [];
  #dropped = 0;
  #failed: TagScan | undefined;
  /** Bytes of the document in chunks before the current one. */
  #base = 0;
  #state = VALUE;
  readonly #stack = new Uint8Array(TAG_LIST_MAX_DEPTH);
  #depth = 0;
  /** The top-level object's `tags` key was just read: the next value is the list (or not a list). */
  #tagsValueNext = false;
  /** Inside the top-level `tags` array: its string entries at depth 2 are candidate tags. */
  #inTags = false;

  // The string being read.
  #role = ROLE_NONE;
  #isKey = false;
  /** 0: plain; 1: past a backslash; 2: inside `\u` with #hexLeft digits to come. */
  #esc = 0;
  #hexLeft = 0;
  /** Where the escape being read starts (an invalid escape is reported there). */
  #escAt = 0;
  #escaped = false;
  /** TAG while every byte so far is a tag character, else 0. */
  #tagChars = TAG;
  /** Bytes of the string in chunks before the current one; the first MAX_ESCAPED_TAG of them are in #carry. */
  #strLen = 0;
  readonly #carry = new Uint8Array(MAX_ESCAPED_TAG);
  #carryLen = 0;
  /** Where the string's bytes start in the current chunk (0 when it began in an earlier one). */
  #segFrom = 0;

  // The literal or number being read.
  #lit = '';
  #litI = 0;
  #num = N_INT;

  constructor(maxTags: number) {
    this.#max = maxTags;
  }

  /** Scans the next bytes; a refusal (invalid, too many) once it is certain, else undefined. */
  write(chunk: Uint8Array): TagScan | undefined {
    if (this.#failed) return this.#failed;
    try {
      this.#scan(chunk);
    } catch (err) {
      if (err instanceof Invalid) this.#failed = { ok: false, why: 'invalid', at: err.at };
      else if (err instanceof TooMany) this.#failed = { ok: false, why: 'too-many' };
      else throw err;
    }
    this.#base += chunk.length;
    return this.#failed;
  }

  /** The verdict on the document written so far, taken as complete. */
  end(): TagScan {
    if (this.#failed) return this.#failed;
    const complete =
      this.#depth === 0 && (this.#state === AFTER || (this.#state === NUMBER && NUMBER_ENDS[this.#num] === true));
    if (!complete) {
      const at = this.#state === STRING && this.#esc !== 0 ? this.#escAt : this.#base;
      this.#failed = { ok: false, why: 'invalid', at };
      return this.#failed;
    }
    return { ok: true, tags: this.#tags, dropped: this.#dropped };
  }

  #scan(b: Uint8Array): void {
    const n = b.length;
    let i = 0;
    this.#segFrom = 0;
    while (i < n) {
      const state = this.#state;
      if (state === STRING) {
        i = this.#string(b, i);
        continue;
      }
      const c = b[i] as number;
      if (state === NUMBER) {
        // A byte that cannot continue the number ends it, and is read again as what follows it.
        if (this.#number(c, i)) i++;
        else this.#state = AFTER;
        continue;
      }
      if (state === LITERAL) {
        if (c !== this.#lit.charCodeAt(this.#litI)) throw new Invalid(this.#base + i);
        if (++this.#litI === this.#lit.length) this.#state = AFTER;
        i++;
        continue;
      }
      if (isWs(c)) {
        i++;
        continue;
      }
      switch (state) {
        case VALUE:
          this.#value(c, i);
          break;
        case ARRAY_FIRST:
          if (c === 0x5d /* ] */) this.#close();
          else this.#value(c, i);
          break;
        case OBJECT_FIRST:
          if (c === 0x7d /* } */) this.#close();
          else this.#key(c, i);
          break;
        case KEY:
          this.#key(c, i);
          break;
        case COLON:
          if (c !== 0x3a /* : */) throw new Invalid(this.#base + i);
          this.#state = VALUE;
          break;
        default: {
          // AFTER
          if (this.#depth === 0) throw new Invalid(this.#base + i);
          const top = this.#stack[this.#depth - 1];
          if (c === 0x2c /* , */) this.#state = top === ARRAY ? VALUE : KEY;
          else if (c === (top === ARRAY ? 0x5d /* ] */ : 0x7d) /* } */) this.#close();
          else throw new Invalid(this.#base + i);
        }
      }
      i++;
    }
  }

  #close(): void {
    if (this.#depth === 2 && this.#inTags) this.#inTags = false;
    this.#depth--;
    this.#state = AFTER;
  }

  /** A key's opening quote at i. */
  #key(c: number, i: number): void {
    if (c !== QUOTE) throw new Invalid(this.#base + i);
    this.#openString(i, this.#depth === 1 ? ROLE_KEY : ROLE_NONE, true);
  }

  /**
   * The first byte of a value, at i. A container is opened (its members are read by #scan), a
   * string, literal or number is begun.
   */
  #value(c: number, i: number): void {
    const tagsValue = this.#tagsValueNext;
    this.#tagsValueNext = false;
    if (tagsValue) {
      // The last `tags` key wins, as with JSON.parse: what an earlier one listed is forgotten.
      this.#tags = [];
      this.#dropped = 0;
    }
    const entry = this.#inTags && this.#depth === 2;
    if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (entry) this.#dropped++;
      if (this.#depth >= TAG_LIST_MAX_DEPTH) throw new Invalid(this.#base + i);
      const kind = c === 0x5b ? ARRAY : OBJECT;
      this.#stack[this.#depth++] = kind;
      if (tagsValue && kind === ARRAY) this.#inTags = true;
      this.#state = kind === ARRAY ? ARRAY_FIRST : OBJECT_FIRST;
      return;
    }
    if (c === QUOTE) {
      this.#openString(i, entry ? ROLE_ENTRY : ROLE_NONE, false);
      return;
    }
    if (entry) this.#dropped++;
    if (c === 0x74 /* t */) return this.#openLiteral('true');
    if (c === 0x66 /* f */) return this.#openLiteral('false');
    if (c === 0x6e /* n */) return this.#openLiteral('null');
    if (c === 0x2d /* - */) this.#num = N_MINUS;
    else if (c === 0x30) this.#num = N_ZERO;
    else if (isDigit(c)) this.#num = N_INT;
    else throw new Invalid(this.#base + i);
    this.#state = NUMBER;
  }

  #openLiteral(word: string): void {
    this.#lit = word;
    this.#litI = 1;
    this.#state = LITERAL;
  }

  /** One more byte of a number (c at i): whether it is part of it (false: the number ended before it). */
  #number(c: number, i: number): boolean {
    switch (this.#num) {
      case N_MINUS:
        if (c === 0x30) this.#num = N_ZERO;
        else if (isDigit(c)) this.#num = N_INT;
        else throw new Invalid(this.#base + i);
        return true;
      case N_ZERO:
      case N_INT:
        if (this.#num === N_INT && isDigit(c)) return true;
        if (c === 0x2e /* . */) this.#num = N_DOT;
        else if (c === 0x65 || c === 0x45 /* e E */) this.#num = N_E;
        else return false;
        return true;
      case N_DOT:
        if (!isDigit(c)) throw new Invalid(this.#base + i);
        this.#num = N_FRAC;
        return true;
      case N_FRAC:
        if (isDigit(c)) return true;
        if (c !== 0x65 && c !== 0x45) return false;
        this.#num = N_E;
        return true;
      case N_E:
        if (c === 0x2b || c === 0x2d /* + - */) this.#num = N_ESIGN;
        else if (isDigit(c)) this.#num = N_EXP;
        else throw new Invalid(this.#base + i);
        return true;
      case N_ESIGN:
        if (!isDigit(c)) throw new Invalid(this.#base + i);
        this.#num = N_EXP;
        return true;
      default:
        return isDigit(c);
    }
  }

  /** The opening quote of a string at i. */
  #openString(i: number, role: number, isKey: boolean): void {
    this.#state = STRING;
    this.#role = role;
    this.#isKey = isKey;
    this.#esc = 0;
    this.#escaped = false;
    this.#tagChars = TAG;
    this.#strLen = 0;
    this.#carryLen = 0;
    this.#segFrom = i + 1;
  }

  /**
   * The bytes of the string from i on: returns the index past its closing quote, or the chunk's
   * length when the chunk ends inside it. Notes whether it has escapes and whether every byte is
   * a tag character, one table lookup per byte.
   */
  #string(b: Uint8Array, i: number): number {
    const n = b.length;
    while (i < n) {
      if (this.#esc === 0) {
        // Plain bytes, the most of any list: one table lookup each.
        let tagChars = this.#tagChars;
        let c = 0;
        let k = 0;
        while (i < n) {
          c = b[i] as number;
          k = CLASS[c] as number;
          if (k & SPECIAL) break;
          tagChars &= k;
          i++;
        }
        this.#tagChars = tagChars;
        if (i === n) break;
        if (c === QUOTE) {
          this.#endString(b, i);
          return i + 1;
        }
        if (c !== BACKSLASH) throw new Invalid(this.#base + i); // a control character
        this.#escaped = true;
        this.#escAt = this.#base + i;
        this.#esc = 1;
      } else if (this.#esc === 1) {
        const c = b[i] as number;
        if (c === 0x75 /* u */) {
          this.#esc = 2;
          this.#hexLeft = 4;
        } else if (
          c === QUOTE ||
          c === BACKSLASH ||
          c === 0x2f ||
          c === 0x62 ||
          c === 0x66 ||
          c === 0x6e ||
          c === 0x72 ||
          c === 0x74
        ) {
          this.#esc = 0;
        } else {
          throw new Invalid(this.#escAt);
        }
      } else {
        if (!isHex(b[i] as number)) throw new Invalid(this.#escAt);
        if (--this.#hexLeft === 0) this.#esc = 0;
      }
      i++;
    }
    // The chunk ends inside the string: what a key or a tag could be is kept for the next one.
    const from = this.#segFrom;
    if (this.#role !== ROLE_NONE) this.#keep(b, from, Math.min(n, from + MAX_ESCAPED_TAG - this.#carryLen));
    this.#strLen += n - from;
    return n;
  }

  #keep(b: Uint8Array, from: number, to: number): void {
    if (to <= from) return;
    this.#carry.set(b.subarray(from, to), this.#carryLen);
    this.#carryLen += to - from;
  }

  /** The closing quote at q: the string's bytes (without quotes) are judged as a key or a tag. */
  #endString(b: Uint8Array, q: number): void {
    this.#state = this.#isKey ? COLON : AFTER;
    if (this.#role === ROLE_NONE) return;
    const len = this.#strLen + q - this.#segFrom;
    if (len > MAX_ESCAPED_TAG) {
      if (this.#role === ROLE_ENTRY) this.#dropped++;
      else this.#tagsValueNext = false;
      return;
    }
    // The string's bytes are bytes[from, from + len): in this chunk, or gathered in #carry.
    let bytes = b;
    let from = this.#segFrom;
    if (this.#strLen > 0) {
      this.#keep(b, from, q);
      bytes = this.#carry;
      from = 0;
    }
    if (this.#role === ROLE_KEY) {
      this.#tagsValueNext = this.#escaped
        ? len + 2 <= MAX_ESCAPED_KEY && decode(bytes, from, len) === 'tags'
        : len === 4 &&
          bytes[from] === 0x74 &&
          bytes[from + 1] === 0x61 &&
          bytes[from + 2] === 0x67 &&
          bytes[from + 3] === 0x73;
      return;
    }
    let tag: string | undefined;
    if (!this.#escaped) {
      // Every byte is a tag character (#string noted it); the first may not be `.` or `-`.
      if (this.#tagChars !== 0 && len >= 1 && len <= 128 && (CLASS[bytes[from] as number] as number) & FIRST)
        tag = text(bytes, from, len, 'latin1');
    } else {
      const decoded = decode(bytes, from, len);
      if (TAG_RE.test(decoded)) tag = decoded;
    }
    if (tag === undefined) {
      this.#dropped++;
      return;
    }
    if (this.#tags.length >= this.#max) throw new TooMany();
    this.#tags.push(tag);
  }
}

/**
 * Bytes as a string, without a Buffer object per tag where the bytes are a Buffer already: a
 * 64 KiB piece of short tags is ~7,000 of them, and a view each made a piece ~7 ms of work.
 */
function text(bytes: Uint8Array, from: number, len: number, encoding: 'latin1' | 'utf8'): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return buf.toString(encoding, from, from + len);
}

/** A string's bytes between its quotes (valid escapes, no control characters), decoded as JSON.parse does. */
function decode(bytes: Uint8Array, from: number, len: number): string {
  return JSON.parse(`"${text(bytes, from, len, 'utf8')}"`) as string;
}

/** The page of a whole tag list document (see pageOfScan). */
export function tagPage(
  upstreamBody: Uint8Array,
  where: string,
  page: { n?: number; last?: string },
  upstreamLink?: string,
  maxTags: number = DEFAULT_TAG_LIST_MAX_TAGS,
): Promise<TagPage> {
  return pageOfScan(scanTagList(upstreamBody, maxTags), where, page, upstreamLink, maxTags);
}

/**
 * The page asked for, from the scan of the upstream's list (`maxTags` is the cap it was scanned
 * with). Paging sorts the tags after `last`, in slices (up to maxTags of them, too many to sort
 * in one go without holding the event loop).
 */
export async function pageOfScan(
  scan: TagScan,
  where: string,
  page: { n?: number; last?: string },
  upstreamLink: string | undefined,
  maxTags: number,
): Promise<TagPage> {
  if (!scan.ok && scan.why === 'invalid')
    throw new RegistryError('upstream', 'UNAVAILABLE', `upstream ${where} answered its tag list with invalid JSON`);
  if (!scan.ok)
    // Refused, not cut: a truncated list would page wrongly (the cut falls in the upstream's order,
    // not the lexical one) and would tell the client there is nothing after the last tag it got.
    throw new RegistryError(
      'upstream',
      'SIZE_INVALID',
      `upstream ${where} answered a tag list of more than ${maxTags} tags, more than the proxy reads (limits.tagListMaxTags); raise limits.tagListMaxTags, or list the tags at the upstream`,
    );
  let tags = scan.tags;
  const upstreamNext = upstreamLink ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(upstreamLink)?.[1] : undefined;
  if (upstreamNext) {
    const next = new URL(upstreamNext, 'http://upstream.invalid').searchParams.get('last') ?? undefined;
    return next === undefined ? { tags } : { tags, next };
  }
  if (page.n === undefined) return { tags };
  const { last } = page;
  if (last !== undefined) tags = tags.filter((tag) => tag > last);
  tags = await sortInSlices(tags);
  if (tags.length <= page.n) return { tags };
  tags = tags.slice(0, page.n);
  const next = tags.at(-1);
  return next === undefined ? { tags } : { tags, next };
}
