// What both envelope formats (JWS, COSE) carry, normalised: the signed attributes after the
// Notary Project's rules on them, the bytes the signature covers, the unsigned certificate chain
// and timestamp. Everything here is still untrusted until verify.ts has checked it.

export const MEDIA_TYPE_JWS = 'application/jose+json';
export const MEDIA_TYPE_COSE = 'application/cose';
export const PAYLOAD_CONTENT_TYPE = 'application/vnd.cncf.notary.payload.v1+json';
export const SCHEME_X509 = 'notary.x509';
export const SCHEME_SIGNING_AUTHORITY = 'notary.x509.signingAuthority';

export const HEADER = {
  signingScheme: 'io.cncf.notary.signingScheme',
  signingTime: 'io.cncf.notary.signingTime',
  authenticSigningTime: 'io.cncf.notary.authenticSigningTime',
  expiry: 'io.cncf.notary.expiry',
  verificationPlugin: 'io.cncf.notary.verificationPlugin',
  verificationPluginMinVersion: 'io.cncf.notary.verificationPluginMinVersion',
  timestampSignature: 'io.cncf.notary.timestampSignature',
  signingAgent: 'io.cncf.notary.signingAgent',
} as const;

/** Envelopes, certificates and tokens above these sizes are refused before parsing. */
export const LIMITS = {
  envelopeBytes: 4 * 1024 * 1024,
  certificates: 10,
  timestampTokenBytes: 64 * 1024,
  payloadBytes: 64 * 1024,
} as const;

export type SigningScheme = typeof SCHEME_X509 | typeof SCHEME_SIGNING_AUTHORITY;

export interface SignatureAlgorithm {
  /** JWS name: PS256 … ES512. */
  readonly name: string;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly kind: 'rsa-pss' | 'ecdsa';
  /** Key size the spec pairs with it (RSA modulus bits, EC curve bits). */
  readonly keyBits: number;
}

export const ALGORITHMS: Readonly<Record<string, SignatureAlgorithm>> = {
  PS256: { name: 'PS256', hash: 'sha256', kind: 'rsa-pss', keyBits: 2048 },
  PS384: { name: 'PS384', hash: 'sha384', kind: 'rsa-pss', keyBits: 3072 },
  PS512: { name: 'PS512', hash: 'sha512', kind: 'rsa-pss', keyBits: 4096 },
  ES256: { name: 'ES256', hash: 'sha256', kind: 'ecdsa', keyBits: 256 },
  ES384: { name: 'ES384', hash: 'sha384', kind: 'ecdsa', keyBits: 384 },
  ES512: { name: 'ES512', hash: 'sha512', kind: 'ecdsa', keyBits: 521 },
};

export interface ParsedEnvelope {
  readonly format: 'JWS' | 'COSE';
  readonly mediaType: string;
  readonly algorithm: SignatureAlgorithm;
  /** The exact bytes the signature covers (JWS signing input, COSE Sig_structure). */
  readonly signingInput: Buffer;
  /** The raw signature bytes (what a timestamp countersigns). */
  readonly signature: Buffer;
  readonly payload: Buffer;
  readonly signingScheme: SigningScheme;
  readonly signingTime: Date | undefined;
  readonly authenticSigningTime: Date | undefined;
  readonly expiry: Date | undefined;
  /** DER certificates, signing certificate first. */
  readonly certificates: readonly Buffer[];
  readonly timestampToken: Buffer | undefined;
  readonly signingAgent: string | undefined;
}

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

/** The signed attributes as each format decoded them, before the common rules. */
export interface RawSignedAttributes {
  algorithm: string | undefined;
  contentType: unknown;
  /** Names listed as critical (COSE integer labels already mapped to names). */
  critical: unknown;
  /** Every protected header name present (COSE integer labels mapped to `alg`/`cty`/`crit`). */
  present: ReadonlySet<string>;
  signingScheme: unknown;
  signingTime: Date | undefined;
  authenticSigningTime: Date | undefined;
  expiry: Date | undefined;
}

/** Names a verifier understands and processes when marked critical. */
const UNDERSTOOD_CRITICAL = new Set<string>([HEADER.signingScheme, HEADER.authenticSigningTime, HEADER.expiry]);

/** The Notary Project's rules on signed attributes, shared by both formats. */
export function checkSignedAttributes(
  raw: RawSignedAttributes,
  format: 'JWS' | 'COSE',
): {
  algorithm: SignatureAlgorithm;
  signingScheme: SigningScheme;
} {
  const algorithm = raw.algorithm === undefined ? undefined : ALGORITHMS[raw.algorithm];
  if (algorithm === undefined)
    throw new EnvelopeError(
      `${format} protected header: algorithm ${JSON.stringify(raw.algorithm)} is not one of ${Object.keys(ALGORITHMS).join(', ')}`,
    );
  if (raw.contentType !== PAYLOAD_CONTENT_TYPE)
    throw new EnvelopeError(
      `${format} protected header: content type ${JSON.stringify(raw.contentType)} is not ${PAYLOAD_CONTENT_TYPE}`,
    );
  const crit = raw.critical;
  if (!Array.isArray(crit) || crit.length === 0 || crit.length > 16 || !crit.every((c) => typeof c === 'string'))
    throw new EnvelopeError(`${format} protected header: crit must be a non-empty list of header names`);
  const critical = new Set(crit as string[]);
  if (critical.size !== crit.length) throw new EnvelopeError(`${format} protected header: crit lists a name twice`);
  for (const name of critical) {
    if (name === HEADER.verificationPlugin || name === HEADER.verificationPluginMinVersion)
      throw new EnvelopeError(
        `${format} protected header: critical ${name} requires a Notation verification plugin; pullgate runs none`,
      );
    if (!UNDERSTOOD_CRITICAL.has(name))
      throw new EnvelopeError(`${format} protected header: unknown critical header ${JSON.stringify(name)}`);
    if (!raw.present.has(name))
      throw new EnvelopeError(`${format} protected header: crit names ${name}, which is not in the header`);
  }
  for (const name of [HEADER.verificationPlugin, HEADER.verificationPluginMinVersion])
    if (raw.present.has(name) && !critical.has(name))
      throw new EnvelopeError(`${format} protected header: ${name} must be critical`);
  if (!critical.has(HEADER.signingScheme))
    throw new EnvelopeError(`${format} protected header: crit must list ${HEADER.signingScheme}`);
  for (const name of [HEADER.expiry, HEADER.authenticSigningTime])
    if (raw.present.has(name) && !critical.has(name))
      throw new EnvelopeError(`${format} protected header: ${name} is present but not marked critical`);
  const scheme = raw.signingScheme;
  if (scheme === SCHEME_X509) {
    if (raw.signingTime === undefined)
      throw new EnvelopeError(`${format} protected header: ${HEADER.signingTime} is required under ${SCHEME_X509}`);
    if (raw.present.has(HEADER.authenticSigningTime))
      throw new EnvelopeError(
        `${format} protected header: ${HEADER.authenticSigningTime} is not allowed under ${SCHEME_X509}`,
      );
  } else if (scheme === SCHEME_SIGNING_AUTHORITY) {
    if (raw.authenticSigningTime === undefined)
      throw new EnvelopeError(
        `${format} protected header: ${HEADER.authenticSigningTime} is required under ${SCHEME_SIGNING_AUTHORITY}`,
      );
    if (raw.present.has(HEADER.signingTime))
      throw new EnvelopeError(
        `${format} protected header: ${HEADER.signingTime} is not allowed under ${SCHEME_SIGNING_AUTHORITY}`,
      );
  } else throw new EnvelopeError(`${format} protected header: unknown signing scheme ${JSON.stringify(scheme)}`);
  return { algorithm, signingScheme: scheme };
}

/** RFC 3339 date-time (offsets allowed, as real envelopes use `+08:00`). */
export function parseRfc3339(value: unknown, what: string): Date {
  if (typeof value !== 'string')
    throw new EnvelopeError(`${what} must be an RFC 3339 string, got ${JSON.stringify(value)}`);
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/.exec(value);
  const d = new Date(value);
  if (!m || Number.isNaN(d.getTime())) throw new EnvelopeError(`${what} ${JSON.stringify(value)} is not RFC 3339`);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60)
    throw new EnvelopeError(`${what} ${JSON.stringify(value)} is not a valid date-time`);
  return d;
}
