// The Notary Project JWS envelope: JSON serialization, flattened, exactly the members
// payload/protected/header/signature; base64url without padding; x5c in the unprotected header.
import { decodeBase64, decodeBase64Url } from './base64url.ts';
import {
  checkSignedAttributes,
  EnvelopeError,
  HEADER,
  LIMITS,
  MEDIA_TYPE_JWS,
  parseRfc3339,
  type ParsedEnvelope,
} from './envelope.ts';
import { isObject, parseStrictJson } from './json.ts';

const TOP_LEVEL = ['payload', 'protected', 'header', 'signature'];
/** RFC 7515 registered names: never allowed in crit. */
const REGISTERED = new Set(['alg', 'jku', 'jwk', 'kid', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'typ', 'cty', 'crit']);

export function parseJws(bytes: Buffer): ParsedEnvelope {
  if (bytes.length > LIMITS.envelopeBytes)
    throw new EnvelopeError(`JWS envelope of ${bytes.length} bytes is over ${LIMITS.envelopeBytes}`);
  const top = parseStrictJson(bytes.toString('utf8'), 'JWS envelope');
  if (!isObject(top)) throw new EnvelopeError('JWS envelope is not a JSON object');
  for (const key of Object.keys(top))
    if (!TOP_LEVEL.includes(key))
      throw new EnvelopeError(
        `JWS envelope member ${JSON.stringify(key)} is not allowed (flattened JSON: ${TOP_LEVEL.join(', ')})`,
      );
  const { payload, protected: protectedB64, header, signature } = top;
  if (typeof payload !== 'string' || typeof protectedB64 !== 'string' || typeof signature !== 'string')
    throw new EnvelopeError('JWS envelope: payload, protected and signature must be strings');
  if (!isObject(header)) throw new EnvelopeError('JWS envelope: header (unprotected) must be an object');

  const protectedBytes = decodeBase64Url(protectedB64, 'JWS protected');
  const payloadBytes = decodeBase64Url(payload, 'JWS payload');
  const signatureBytes = decodeBase64Url(signature, 'JWS signature');
  if (payloadBytes.length > LIMITS.payloadBytes)
    throw new EnvelopeError(`JWS payload of ${payloadBytes.length} bytes is over ${LIMITS.payloadBytes}`);
  const hdr = parseStrictJson(protectedBytes.toString('utf8'), 'JWS protected header');
  if (!isObject(hdr)) throw new EnvelopeError('JWS protected header is not a JSON object');
  for (const key of Object.keys(header))
    if (Object.hasOwn(hdr, key))
      throw new EnvelopeError(`JWS header ${JSON.stringify(key)} is both protected and unprotected`);
  if (Array.isArray(hdr.crit))
    for (const c of hdr.crit)
      if (typeof c === 'string' && REGISTERED.has(c))
        throw new EnvelopeError(`JWS protected header: crit must not list the registered header ${c}`);

  const optionalTime = (name: string): Date | undefined =>
    Object.hasOwn(hdr, name) ? parseRfc3339(hdr[name], `JWS protected header ${name}`) : undefined;
  const { algorithm, signingScheme } = checkSignedAttributes(
    {
      algorithm: typeof hdr.alg === 'string' ? hdr.alg : undefined,
      contentType: hdr.cty,
      critical: hdr.crit,
      present: new Set(Object.keys(hdr)),
      signingScheme: hdr[HEADER.signingScheme],
      signingTime: optionalTime(HEADER.signingTime),
      authenticSigningTime: optionalTime(HEADER.authenticSigningTime),
      expiry: optionalTime(HEADER.expiry),
    },
    'JWS',
  );

  const x5c = header.x5c;
  if (!Array.isArray(x5c) || x5c.length === 0)
    throw new EnvelopeError('JWS unprotected header: x5c (the certificate chain) is required');
  if (x5c.length > LIMITS.certificates)
    throw new EnvelopeError(`JWS x5c holds ${x5c.length} certificates, over ${LIMITS.certificates}`);
  const certificates = x5c.map((c, i) => {
    if (typeof c !== 'string') throw new EnvelopeError(`JWS x5c[${i}] is not a string`);
    return decodeBase64(c, `JWS x5c[${i}]`);
  });
  let timestampToken: Buffer | undefined;
  const ts = header[HEADER.timestampSignature];
  if (ts !== undefined) {
    if (typeof ts !== 'string') throw new EnvelopeError(`JWS ${HEADER.timestampSignature} is not a string`);
    timestampToken = decodeBase64(ts, `JWS ${HEADER.timestampSignature}`);
    if (timestampToken.length > LIMITS.timestampTokenBytes)
      throw new EnvelopeError(`JWS timestamp token of ${timestampToken.length} bytes is over the limit`);
  }
  const agent = header[HEADER.signingAgent];
  return {
    format: 'JWS',
    mediaType: MEDIA_TYPE_JWS,
    algorithm,
    signingInput: Buffer.from(`${protectedB64}.${payload}`, 'ascii'),
    signature: signatureBytes,
    payload: payloadBytes,
    signingScheme,
    signingTime: optionalTime(HEADER.signingTime),
    authenticSigningTime: optionalTime(HEADER.authenticSigningTime),
    expiry: optionalTime(HEADER.expiry),
    certificates,
    timestampToken,
    signingAgent: typeof agent === 'string' ? agent : undefined,
  };
}
