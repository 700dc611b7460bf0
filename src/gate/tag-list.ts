// One page of a repository's tags from the upstream's answer. Registries that ignore `n`/`last`
// (distribution 2.8 does for tags) are paged here, in the spec's lexical order; an upstream that
// pages itself keeps its own cursor. Pure.
//
// The upstream's list is scanned, not parsed: JSON.parse of a 16 MiB list of short tags builds a
// million strings (about +120 MiB of RSS) to keep a page of them. The scanner checks that the
// bytes are one JSON document and keeps only the valid tags of the top-level `tags` array, at most
// `maxTags` of them; everything else is stepped over without building anything.
import { RegistryError } from '../oci/errors.ts';
import { DEFAULT_TAG_LIST_MAX_TAGS } from './limits.ts';
import type { TagPage } from './types.ts';

/** Arrays and objects nested deeper than this are not a tag list pullgate reads (a tag list nests 2). */
export const TAG_LIST_MAX_DEPTH = 64;
/** The longest tag (distribution grammar) is 128 bytes; escaped (`\u0061`), at most six times that. */
const MAX_ESCAPED_TAG = 6 * 128;

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
 * Work is linear in the bytes; memory is the tags kept and a stack of TAG_LIST_MAX_DEPTH.
 */
export function scanTagList(bytes: Uint8Array, maxTags: number): TagScan {
  const s = new Scanner(bytes, maxTags);
  try {
    s.document();
    return { ok: true, tags: s.tags, dropped: s.dropped };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, why: 'invalid', at: err.at };
    if (err instanceof TooMany) return { ok: false, why: 'too-many' };
    throw err;
  }
}

/** 0: array, 1: object. */
type Container = 0 | 1;

class Scanner {
  readonly #b: Uint8Array;
  readonly #max: number;
  #i = 0;
  readonly #stack: Container[] = [];
  tags: string[] = [];
  dropped = 0;
  /** The top-level object's `tags` key was just read: the next value is the list (or not a list). */
  #tagsValueNext = false;
  /** Inside the top-level `tags` array: its string entries at depth 2 are candidate tags. */
  #inTags = false;
  /** Of the string #string() read last: whether it has escapes, and whether all its bytes are tag characters. */
  #escaped = false;
  #tagChars = false;

  constructor(bytes: Uint8Array, maxTags: number) {
    this.#b = bytes;
    this.#max = maxTags;
  }

  #ws(): void {
    const b = this.#b;
    while (this.#i < b.length && isWs(b[this.#i] as number)) this.#i++;
  }

  #peek(): number {
    if (this.#i >= this.#b.length) throw new Invalid(this.#i);
    return this.#b[this.#i] as number;
  }

  document(): void {
    // An iterative walk: deep nesting costs a bounded stack, never the JavaScript call stack.
    this.#ws();
    this.#value();
    for (;;) {
      this.#ws();
      const depth = this.#stack.length;
      if (depth === 0) {
        if (this.#i !== this.#b.length) throw new Invalid(this.#i);
        return;
      }
      const top = this.#stack[depth - 1] as Container;
      const c = this.#peek();
      this.#i++;
      if (c === 0x2c /* , */) {
        this.#ws();
        if (top === 1) this.#key();
        this.#value();
      } else if (c === (top === 0 ? 0x5d /* ] */ : 0x7d) /* } */) {
        this.#stack.pop();
        if (depth === 2 && this.#inTags) this.#inTags = false;
      } else {
        throw new Invalid(this.#i - 1);
      }
    }
  }

  /** A key and its colon; the caller reads the value. */
  #key(): void {
    if (this.#peek() !== QUOTE) throw new Invalid(this.#i);
    const start = this.#i;
    this.#string();
    const end = this.#i;
    if (this.#stack.length === 1) {
      const isTags = this.#escaped
        ? end - start <= 64 && JSON.parse(Buffer.from(this.#b.subarray(start, end)).toString('utf8')) === 'tags'
        : end - start === 6 && Buffer.from(this.#b.subarray(start + 1, end - 1)).toString('latin1') === 'tags';
      this.#tagsValueNext = isTags;
    }
    this.#ws();
    if (this.#peek() !== 0x3a /* : */) throw new Invalid(this.#i);
    this.#i++;
    this.#ws();
  }

  /**
   * One value. A scalar is read whole; an array or object is opened (pushed) and, if empty, closed:
   * its members are read by the loop in document().
   */
  #value(): void {
    const tagsValue = this.#tagsValueNext;
    this.#tagsValueNext = false;
    const c = this.#peek();
    if (tagsValue) {
      // The last `tags` key wins, as with JSON.parse: what an earlier one listed is forgotten.
      this.tags = [];
      this.dropped = 0;
    }
    const entry = this.#inTags && this.#stack.length === 2;
    if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (entry) this.dropped++;
      if (this.#stack.length >= TAG_LIST_MAX_DEPTH) throw new Invalid(this.#i);
      const kind: Container = c === 0x5b ? 0 : 1;
      this.#i++;
      this.#ws();
      if (this.#peek() === (kind === 0 ? 0x5d : 0x7d)) {
        this.#i++;
        return;
      }
      this.#stack.push(kind);
      if (tagsValue && kind === 0) this.#inTags = true;
      if (kind === 1) this.#key();
      this.#value();
      return;
    }
    if (c === QUOTE) {
      const start = this.#i;
      this.#string();
      if (entry) this.#entry(start, this.#i);
      return;
    }
    if (entry) this.dropped++;
    if (c === 0x74 /* t */) return this.#literal('true');
    if (c === 0x66 /* f */) return this.#literal('false');
    if (c === 0x6e /* n */) return this.#literal('null');
    this.#number();
  }

  /** A string entry of the tags array (from #i0 to #i), kept if it is a valid tag. */
  #entry(start: number, end: number): void {
    const b = this.#b;
    let tag: string | undefined;
    if (!this.#escaped) {
      const len = end - start - 2;
      // #string noted whether every byte is a tag character; the first may not be `.` or `-`.
      if (this.#tagChars && len >= 1 && len <= 128 && (CLASS[b[start + 1] as number] as number) & FIRST)
        tag = Buffer.from(b.buffer, b.byteOffset + start + 1, len).toString('latin1');
    } else if (end - start <= MAX_ESCAPED_TAG + 2) {
      const decoded = JSON.parse(Buffer.from(b.subarray(start, end)).toString('utf8')) as string;
      if (TAG_RE.test(decoded)) tag = decoded;
    }
    if (tag === undefined) {
      this.dropped++;
      return;
    }
    if (this.tags.length >= this.#max) throw new TooMany();
    this.tags.push(tag);
  }

  /**
   * A string at #i (which is a quote); #i ends past its closing quote. Sets #escaped (it has escapes)
   * and #tagChars (every byte is one of `[A-Za-z0-9_.-]`), one table lookup per byte.
   */
  #string(): void {
    const b = this.#b;
    const n = b.length;
    let i = this.#i + 1;
    let escaped = false;
    let tagChars = TAG;
    for (;;) {
      if (i >= n) throw new Invalid(i);
      const c = b[i] as number;
      const k = CLASS[c] as number;
      if ((k & SPECIAL) === 0) {
        tagChars &= k;
        i++;
        continue;
      }
      if (c === QUOTE) break;
      if (c !== BACKSLASH) throw new Invalid(i); // a control character
      escaped = true;
      const e = b[i + 1];
      if (e === 0x75 /* u */) {
        for (let h = 2; h < 6; h++) if (!isHex(b[i + h] ?? 0)) throw new Invalid(i);
        i += 6;
      } else if (
        e === QUOTE ||
        e === BACKSLASH ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        i += 2;
      } else {
        throw new Invalid(i);
      }
    }
    this.#i = i + 1;
    this.#escaped = escaped;
    this.#tagChars = tagChars !== 0;
  }

  #literal(word: string): void {
    for (let k = 0; k < word.length; k++) {
      if (this.#b[this.#i + k] !== word.charCodeAt(k)) throw new Invalid(this.#i + k);
    }
    this.#i += word.length;
  }

  /** `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` */
  #number(): void {
    const b = this.#b;
    let i = this.#i;
    const digits = (): void => {
      const from = i;
      while (i < b.length && isDigit(b[i] as number)) i++;
      if (i === from) throw new Invalid(i);
    };
    if (b[i] === 0x2d) i++;
    if (b[i] === 0x30) i++;
    else digits();
    if (b[i] === 0x2e) {
      i++;
      digits();
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      i++;
      if (b[i] === 0x2b || b[i] === 0x2d) i++;
      digits();
    }
    this.#i = i;
  }
}

export function tagPage(
  upstreamBody: Buffer,
  where: string,
  page: { n?: number; last?: string },
  upstreamLink?: string,
  maxTags: number = DEFAULT_TAG_LIST_MAX_TAGS,
): TagPage {
  const scan = scanTagList(upstreamBody, maxTags);
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
  tags.sort();
  const { last } = page;
  if (last !== undefined) tags = tags.filter((tag) => tag > last);
  if (tags.length <= page.n) return { tags };
  tags = tags.slice(0, page.n);
  const next = tags.at(-1);
  return next === undefined ? { tags } : { tags, next };
}
