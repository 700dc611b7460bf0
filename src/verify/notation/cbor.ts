// A strict, bounded CBOR (RFC 8949) decoder for COSE_Sign1: definite lengths only, no duplicate
// map keys, map keys only integers or text, no floats, nesting and item counts capped. Written
// here rather than taken from a package so that every rule above is ours to state and test.

export class CborError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CborError';
  }
}

export type CborKey = number | string;
export type CborValue =
  number | bigint | string | Buffer | boolean | null | undefined | readonly CborValue[] | CborMap | CborTag;
export type CborMap = ReadonlyMap<CborKey, CborValue>;
export interface CborTag {
  readonly tag: number;
  readonly value: CborValue;
}

export function isTag(v: CborValue): v is CborTag {
  return typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && !Array.isArray(v) && !(v instanceof Map);
}

export function isMap(v: CborValue): v is CborMap {
  return v instanceof Map;
}

const MAX_DEPTH = 16;
const MAX_ITEMS = 10_000;

/** Decodes exactly one data item spanning all of `buf`. */
export function decodeCbor(buf: Buffer, what = 'CBOR'): CborValue {
  const state = { pos: 0, items: 0 };
  const value = item(buf, state, 0, what);
  if (state.pos !== buf.length) throw new CborError(`${what}: ${buf.length - state.pos} trailing bytes`);
  return value;
}

/** Like decodeCbor, but also returns the raw bytes of each top-level array element (COSE signs them). */
export function decodeCborArrayRaw(buf: Buffer, what: string): { tag: number | undefined; elements: Buffer[] } {
  const state = { pos: 0, items: 0 };
  let tag: number | undefined;
  let [major, arg] = head(buf, state, what);
  if (major === 6) {
    tag = toNumber(arg, what);
    [major, arg] = head(buf, state, what);
  }
  if (major !== 4) throw new CborError(`${what}: expected an array`);
  const count = toNumber(arg, what);
  if (count > 64) throw new CborError(`${what}: array of ${count} elements`);
  const elements: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const start = state.pos;
    item(buf, state, 1, what);
    elements.push(buf.subarray(start, state.pos));
  }
  if (state.pos !== buf.length) throw new CborError(`${what}: ${buf.length - state.pos} trailing bytes`);
  return { tag, elements };
}

function head(buf: Buffer, state: { pos: number }, what: string): [number, number | bigint] {
  if (state.pos >= buf.length) throw new CborError(`${what}: truncated`);
  const initial = buf[state.pos++] as number;
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (info < 24) return [major, info];
  const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
  if (size === 0) {
    if (info === 31) throw new CborError(`${what}: indefinite-length items are not allowed`);
    throw new CborError(`${what}: reserved additional information ${info}`);
  }
  if (state.pos + size > buf.length) throw new CborError(`${what}: truncated`);
  let arg: number | bigint;
  if (size === 8) {
    arg = buf.readBigUInt64BE(state.pos);
    if (arg <= BigInt(Number.MAX_SAFE_INTEGER)) arg = Number(arg);
  } else arg = buf.readUIntBE(state.pos, size);
  state.pos += size;
  return [major, arg];
}

function toNumber(arg: number | bigint, what: string): number {
  if (typeof arg === 'bigint') throw new CborError(`${what}: length or tag too large`);
  return arg;
}

function item(buf: Buffer, state: { pos: number; items: number }, depth: number, what: string): CborValue {
  if (depth > MAX_DEPTH) throw new CborError(`${what}: nested deeper than ${MAX_DEPTH}`);
  if (++state.items > MAX_ITEMS) throw new CborError(`${what}: more than ${MAX_ITEMS} items`);
  const initial = buf[state.pos];
  const [major, arg] = head(buf, state, what);
  switch (major) {
    case 0:
      return arg;
    case 1:
      return typeof arg === 'bigint' ? -1n - arg : -1 - arg;
    case 2:
    case 3: {
      const len = toNumber(arg, what);
      if (state.pos + len > buf.length) throw new CborError(`${what}: string runs past the end`);
      const bytes = buf.subarray(state.pos, state.pos + len);
      state.pos += len;
      if (major === 2) return bytes;
      const text = new TextDecoder('utf-8', { fatal: true });
      try {
        return text.decode(bytes);
      } catch {
        throw new CborError(`${what}: text string is not UTF-8`);
      }
    }
    case 4: {
      const len = toNumber(arg, what);
      if (len > buf.length - state.pos) throw new CborError(`${what}: array longer than the input`);
      const out: CborValue[] = [];
      for (let i = 0; i < len; i++) out.push(item(buf, state, depth + 1, what));
      return out;
    }
    case 5: {
      const len = toNumber(arg, what);
      if (len * 2 > buf.length - state.pos) throw new CborError(`${what}: map longer than the input`);
      const out = new Map<CborKey, CborValue>();
      for (let i = 0; i < len; i++) {
        const key = item(buf, state, depth + 1, what);
        if (typeof key !== 'number' && typeof key !== 'string')
          throw new CborError(`${what}: map key must be an integer or a text string`);
        if (out.has(key)) throw new CborError(`${what}: duplicate map key ${JSON.stringify(key)}`);
        out.set(key, item(buf, state, depth + 1, what));
      }
      return out;
    }
    case 6:
      return { tag: toNumber(arg, what), value: item(buf, state, depth + 1, what) };
    default: {
      // major 7: simple values; floats are not used by COSE headers Notation defines
      if (initial === 0xf4) return false;
      if (initial === 0xf5) return true;
      if (initial === 0xf6) return null;
      if (initial === 0xf7) return undefined;
      throw new CborError(`${what}: unsupported simple value or float (initial byte 0x${(initial ?? 0).toString(16)})`);
    }
  }
}
