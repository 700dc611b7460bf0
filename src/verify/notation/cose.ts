// The Notary Project COSE envelope: COSE_Sign1_Tagged (CBOR tag 18), signed attributes in the
// protected map (times as tag-1 epoch integers), x5chain (label 33) and the timestamp token in
// the unprotected map. The signature covers Sig_structure ["Signature1", protected, h'', payload].
import { CborError, decodeCbor, decodeCborArrayRaw, isMap, isTag, type CborMap, type CborValue } from './cbor.ts';
import {
  checkSignedAttributes,
  EnvelopeError,
  HEADER,
  LIMITS,
  MEDIA_TYPE_COSE,
  type ParsedEnvelope,
} from './envelope.ts';
import { encodeLength } from './der.ts';

const COSE_SIGN1_TAG = 18;
const LABEL = { alg: 1, crit: 2, cty: 3, x5chain: 33 } as const;
const ALG_BY_ID: Record<number, string> = {
  [-37]: 'PS256',
  [-38]: 'PS384',
  [-39]: 'PS512',
  [-7]: 'ES256',
  [-35]: 'ES384',
  [-36]: 'ES512',
};
const NAME_BY_LABEL: Record<number, string> = { 1: 'alg', 2: 'crit', 3: 'cty' };

export function parseCose(bytes: Buffer): ParsedEnvelope {
  if (bytes.length > LIMITS.envelopeBytes)
    throw new EnvelopeError(`COSE envelope of ${bytes.length} bytes is over ${LIMITS.envelopeBytes}`);
  try {
    return parse(bytes);
  } catch (err) {
    if (err instanceof CborError) throw new EnvelopeError(`COSE envelope: ${err.message}`);
    throw err;
  }
}

function parse(bytes: Buffer): ParsedEnvelope {
  const { tag, elements } = decodeCborArrayRaw(bytes, 'COSE_Sign1');
  if (tag !== COSE_SIGN1_TAG) throw new EnvelopeError(`COSE envelope is not COSE_Sign1_Tagged (tag ${tag ?? 'none'})`);
  if (elements.length !== 4) throw new EnvelopeError(`COSE_Sign1 has ${elements.length} elements, not 4`);
  const [protectedRaw, unprotectedRaw, payloadRaw, signatureRaw] = elements as [Buffer, Buffer, Buffer, Buffer];
  const protectedBstr = decodeCbor(protectedRaw, 'COSE protected');
  const unprotected = decodeCbor(unprotectedRaw, 'COSE unprotected');
  const payload = decodeCbor(payloadRaw, 'COSE payload');
  const signature = decodeCbor(signatureRaw, 'COSE signature');
  if (!Buffer.isBuffer(protectedBstr) || protectedBstr.length === 0)
    throw new EnvelopeError('COSE protected header must be a non-empty byte string');
  if (!isMap(unprotected)) throw new EnvelopeError('COSE unprotected header must be a map');
  if (!Buffer.isBuffer(payload)) throw new EnvelopeError('COSE payload must be attached (a byte string)');
  if (!Buffer.isBuffer(signature)) throw new EnvelopeError('COSE signature must be a byte string');
  if (payload.length > LIMITS.payloadBytes)
    throw new EnvelopeError(`COSE payload of ${payload.length} bytes is over ${LIMITS.payloadBytes}`);
  const hdr = decodeCbor(protectedBstr, 'COSE protected header');
  if (!isMap(hdr)) throw new EnvelopeError('COSE protected header is not a map');
  for (const key of unprotected.keys())
    if (hdr.has(key)) throw new EnvelopeError(`COSE header ${JSON.stringify(key)} is both protected and unprotected`);

  const present = new Set<string>();
  for (const key of hdr.keys()) present.add(typeof key === 'number' ? (NAME_BY_LABEL[key] ?? String(key)) : key);
  const alg = hdr.get(LABEL.alg);
  const critRaw = hdr.get(LABEL.crit);
  const critical = Array.isArray(critRaw)
    ? critRaw
        .map((c: CborValue) => {
          if (typeof c === 'number') {
            if (c === LABEL.alg || c === LABEL.cty) return null; // understood core labels
            throw new EnvelopeError(`COSE protected header: unknown critical label ${c}`);
          }
          return c;
        })
        .filter((c) => c !== null)
    : critRaw;
  const time = (name: string) => epochTime(hdr, name);
  const { algorithm, signingScheme } = checkSignedAttributes(
    {
      algorithm: typeof alg === 'number' ? ALG_BY_ID[alg] : undefined,
      contentType: hdr.get(LABEL.cty),
      critical,
      present,
      signingScheme: hdr.get(HEADER.signingScheme),
      signingTime: time(HEADER.signingTime),
      authenticSigningTime: time(HEADER.authenticSigningTime),
      expiry: time(HEADER.expiry),
    },
    'COSE',
  );

  const chain = unprotected.get(LABEL.x5chain);
  const list = Buffer.isBuffer(chain) ? [chain] : chain;
  if (!Array.isArray(list) || list.length === 0)
    throw new EnvelopeError('COSE unprotected header: x5chain (label 33) is required');
  if (list.length > LIMITS.certificates)
    throw new EnvelopeError(`COSE x5chain holds ${list.length} certificates, over ${LIMITS.certificates}`);
  const certificates = list.map((c: CborValue, i: number) => {
    if (!Buffer.isBuffer(c)) throw new EnvelopeError(`COSE x5chain[${i}] is not a byte string`);
    return c;
  });
  const ts = unprotected.get(HEADER.timestampSignature);
  if (ts !== undefined && !Buffer.isBuffer(ts))
    throw new EnvelopeError(`COSE ${HEADER.timestampSignature} is not a byte string`);
  if (ts !== undefined && ts.length > LIMITS.timestampTokenBytes)
    throw new EnvelopeError(`COSE timestamp token of ${ts.length} bytes is over the limit`);
  const agent = unprotected.get(HEADER.signingAgent);
  return {
    format: 'COSE',
    mediaType: MEDIA_TYPE_COSE,
    algorithm,
    signingInput: sigStructure(protectedBstr, payload),
    signature,
    payload,
    signingScheme,
    signingTime: time(HEADER.signingTime),
    authenticSigningTime: time(HEADER.authenticSigningTime),
    expiry: time(HEADER.expiry),
    certificates,
    timestampToken: ts,
    signingAgent: typeof agent === 'string' ? agent : undefined,
  };
}

function epochTime(hdr: CborMap, name: string): Date | undefined {
  if (!hdr.has(name)) return undefined;
  const v = hdr.get(name) as CborValue;
  if (!isTag(v) || v.tag !== 1 || typeof v.value !== 'number')
    throw new EnvelopeError(`COSE protected header ${name} must be a tag-1 epoch integer`);
  const d = new Date(v.value * 1000);
  if (Number.isNaN(d.getTime())) throw new EnvelopeError(`COSE protected header ${name} is out of range`);
  return d;
}

/** CBOR encoding of ["Signature1", protected, h'', payload] (RFC 9052 §4.4). */
export function sigStructure(protectedBstr: Buffer, payload: Buffer): Buffer {
  const bstr = (b: Buffer) => Buffer.concat([cborHead(2, b.length), b]);
  const context = Buffer.from('Signature1', 'ascii');
  return Buffer.concat([
    Buffer.from([0x84]),
    cborHead(3, context.length),
    context,
    bstr(protectedBstr),
    bstr(Buffer.alloc(0)),
    bstr(payload),
  ]);
}

function cborHead(major: number, n: number): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) return Buffer.from([m | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = m | 26;
  b.writeUInt32BE(n, 1);
  return b;
}
