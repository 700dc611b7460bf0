// A strict, bounded DER reader: definite lengths only, minimal length encodings, no reads past
// the end, nesting depth capped. Enough ASN.1 for X.509 extensions, CMS SignedData, TSTInfo and
// CRLs; anything it does not understand is an error, never a guess.

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/** One TLV. `bytes` is the whole encoding (tag, length, value); `value` the contents. */
export interface Der {
  readonly tag: number;
  readonly constructed: boolean;
  readonly bytes: Buffer;
  readonly value: Buffer;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  BMP_STRING: 0x1e,
  UNIVERSAL_STRING: 0x1c,
} as const;

const MAX_DEPTH = 32;
const MAX_CHILDREN = 10_000;

/** Reads exactly one TLV spanning all of `buf`. */
export function parseDer(buf: Buffer, what = 'DER'): Der {
  const [node, end] = readTlv(buf, 0, what);
  if (end !== buf.length) throw new DerError(`${what}: ${buf.length - end} trailing bytes after the value`);
  return node;
}

function readTlv(buf: Buffer, start: number, what: string): [Der, number] {
  if (start + 2 > buf.length) throw new DerError(`${what}: truncated`);
  const tag = buf[start] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`${what}: multi-byte tags are not supported`);
  let pos = start + 1;
  const first = buf[pos++] as number;
  let length: number;
  if (first < 0x80) length = first;
  else {
    const count = first & 0x7f;
    if (count === 0) throw new DerError(`${what}: indefinite length is not DER`);
    if (count > 4) throw new DerError(`${what}: length of ${count} bytes is too large`);
    if (pos + count > buf.length) throw new DerError(`${what}: truncated length`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[pos++] as number);
    if (length < 0x80 || (count > 1 && (buf[pos - count] as number) === 0))
      throw new DerError(`${what}: length is not minimally encoded`);
  }
  const end = pos + length;
  if (end > buf.length) throw new DerError(`${what}: value runs past the end (${length} bytes declared)`);
  return [
    { tag, constructed: (tag & 0x20) !== 0, bytes: buf.subarray(start, end), value: buf.subarray(pos, end) },
    end,
  ];
}

/** The children of a constructed value. */
export function children(node: Der, what = 'DER'): Der[] {
  if (!node.constructed) throw new DerError(`${what}: expected a constructed value, got tag 0x${hex(node.tag)}`);
  const out: Der[] = [];
  let pos = 0;
  while (pos < node.value.length) {
    if (out.length >= MAX_CHILDREN) throw new DerError(`${what}: more than ${MAX_CHILDREN} elements`);
    const [child, end] = readTlv(node.value, pos, what);
    out.push(child);
    pos = end;
  }
  return out;
}

/** Checks that a whole structure is well-formed DER down to `MAX_DEPTH`, so later reads cannot recurse without bound. */
export function checkDepth(node: Der, what = 'DER', depth = 0): void {
  if (depth > MAX_DEPTH) throw new DerError(`${what}: nested deeper than ${MAX_DEPTH}`);
  if (node.constructed) for (const c of children(node, what)) checkDepth(c, what, depth + 1);
}

export function expectTag(node: Der | undefined, tag: number, what: string): Der {
  if (node === undefined) throw new DerError(`${what}: missing`);
  if (node.tag !== tag) throw new DerError(`${what}: expected tag 0x${hex(tag)}, got 0x${hex(node.tag)}`);
  return node;
}

export function sequence(node: Der | undefined, what: string): Der[] {
  return children(expectTag(node, TAG.SEQUENCE, what), what);
}

export function oid(node: Der | undefined, what: string): string {
  const v = expectTag(node, TAG.OID, what).value;
  if (v.length === 0 || v.length > 64) throw new DerError(`${what}: bad object identifier length`);
  const arcs: number[] = [];
  let acc = 0;
  for (let i = 0; i < v.length; i++) {
    const b = v[i] as number;
    if (acc === 0 && b === 0x80) throw new DerError(`${what}: object identifier arc is not minimal`);
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 128) throw new DerError(`${what}: object identifier arc too large`);
    if ((b & 0x80) === 0) {
      arcs.push(acc);
      acc = 0;
    } else if (i === v.length - 1) throw new DerError(`${what}: truncated object identifier`);
  }
  const first = arcs[0] as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** A non-negative or negative INTEGER as a bigint (serials can be 20 bytes). */
export function integer(node: Der | undefined, what: string): bigint {
  const v = expectTag(node, TAG.INTEGER, what).value;
  if (v.length === 0) throw new DerError(`${what}: empty integer`);
  if (
    v.length > 1 &&
    ((v[0] === 0 && ((v[1] as number) & 0x80) === 0) || (v[0] === 0xff && ((v[1] as number) & 0x80) !== 0))
  )
    throw new DerError(`${what}: integer is not minimally encoded`);
  let n = BigInt(`0x${v.toString('hex')}`);
  if (((v[0] as number) & 0x80) !== 0) n -= 1n << BigInt(v.length * 8);
  return n;
}

export function smallInteger(node: Der | undefined, what: string): number {
  const n = integer(node, what);
  if (n < 0n || n > 0xffffffffn) throw new DerError(`${what}: integer out of range`);
  return Number(n);
}

export function boolean(node: Der | undefined, what: string): boolean {
  const v = expectTag(node, TAG.BOOLEAN, what).value;
  if (v.length !== 1 || (v[0] !== 0 && v[0] !== 0xff)) throw new DerError(`${what}: boolean is not DER`);
  return v[0] === 0xff;
}

export function octetString(node: Der | undefined, what: string): Buffer {
  return expectTag(node, TAG.OCTET_STRING, what).value;
}

/** BIT STRING contents as bytes plus the count of unused trailing bits. */
export function bitString(node: Der | undefined, what: string): { bytes: Buffer; unused: number } {
  const v = expectTag(node, TAG.BIT_STRING, what).value;
  if (v.length === 0) throw new DerError(`${what}: empty bit string`);
  const unused = v[0] as number;
  if (unused > 7 || (v.length === 1 && unused !== 0)) throw new DerError(`${what}: bad unused-bit count`);
  return { bytes: v.subarray(1), unused };
}

/** UTCTime or GeneralizedTime, in the DER forms RFC 5280 allows (Z, seconds, GeneralizedTime fractions). */
export function time(node: Der | undefined, what: string): Date {
  if (node === undefined) throw new DerError(`${what}: missing`);
  const s = node.value.toString('latin1');
  let m: RegExpExecArray | null;
  let iso: string;
  if (node.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError(`${what}: bad UTCTime ${JSON.stringify(s)}`);
    const yy = Number(m[1]);
    iso = `${yy >= 50 ? 1900 + yy : 2000 + yy}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
  } else if (node.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d{1,9})?Z$/.exec(s);
    if (!m) throw new DerError(`${what}: bad GeneralizedTime ${JSON.stringify(s)}`);
    if (m[7] !== undefined && m[7].endsWith('0')) throw new DerError(`${what}: trailing zero in fraction is not DER`);
    const ms = m[7] === undefined ? '' : `.${(m[7].slice(1) + '000').slice(0, 3)}`;
    iso = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${ms}Z`;
  } else throw new DerError(`${what}: expected a time, got tag 0x${hex(node.tag)}`);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== iso.slice(0, 19))
    throw new DerError(`${what}: invalid date ${JSON.stringify(s)}`);
  return d;
}

/** Context-specific tag number of a node (`[n]`), or -1 when it is not context-specific. */
export function contextTag(node: Der): number {
  return (node.tag & 0xc0) === 0x80 ? node.tag & 0x1f : -1;
}

/** Re-reads the contents of an IMPLICIT/EXPLICIT context-tagged value as one TLV (EXPLICIT). */
export function explicit(node: Der, what: string): Der {
  const inner = children(node, what);
  if (inner.length !== 1) throw new DerError(`${what}: explicit tag must wrap exactly one value`);
  return inner[0] as Der;
}

export function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** `value` re-encoded under another tag (CMS signs the signed attributes as a SET, not as [0]). */
export function retag(node: Der, tag: number): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(node.value.length), node.value]);
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
