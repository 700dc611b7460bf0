// The cluster's service-account signing keys as a JSON Web Key Set (what the API server serves at
// /openid/v1/jwks), read from a file so tokens are verified offline. Bounded; only public RSA
// (2048 bits or more) and P-256 keys for signatures are taken. Pure.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { keyFits, type JwtAlg } from './jwt.ts';

export const JWKS_MAX_BYTES = 256 * 1024;
const MAX_KEYS = 64;

export interface Jwk {
  kid: string | undefined;
  alg: JwtAlg;
  key: KeyObject;
}

/** The keys of a JWKS document, or a message naming the key that is wrong and why. */
export function parseJwks(text: string): Jwk[] | string {
  if (text.length > JWKS_MAX_BYTES) return `the JWKS is larger than ${JWKS_MAX_BYTES} bytes`;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return 'not a JWKS: expected {"keys": [...]}';
  if (keys.length === 0) return 'the JWKS has no keys';
  if (keys.length > MAX_KEYS) return `the JWKS has more than ${MAX_KEYS} keys`;
  const out: Jwk[] = [];
  for (const [i, k] of keys.entries()) {
    const parsed = parseJwk(k);
    if (typeof parsed === 'string') return `keys[${i}]: ${parsed}`;
    if (parsed) out.push(parsed);
  }
  if (out.length === 0) return 'the JWKS has no RSA or P-256 signature keys';
  return out;
}

/** One key; undefined for keys that are not for signatures (use: enc), which are skipped. */
function parseJwk(k: unknown): Jwk | undefined | string {
  if (k === null || typeof k !== 'object' || Array.isArray(k)) return 'not a JSON object';
  const jwk = k as Record<string, unknown>;
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  if ('d' in jwk) return 'is a private key: the JWKS must hold public keys only';
  const kid = jwk.kid;
  if (kid !== undefined && typeof kid !== 'string') return '"kid" is not a string';
  let alg: JwtAlg;
  let pub: Record<string, unknown>;
  if (jwk.kty === 'RSA') {
    alg = 'RS256';
    pub = { kty: 'RSA', n: jwk.n, e: jwk.e };
  } else if (jwk.kty === 'EC' && jwk.crv === 'P-256') {
    alg = 'ES256';
    pub = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
  } else {
    return `key type ${JSON.stringify(jwk.kty)}${jwk.crv ? ` ${JSON.stringify(jwk.crv)}` : ''} is not accepted (RSA, EC P-256)`;
  }
  if (jwk.alg !== undefined && jwk.alg !== alg) return `"alg" ${JSON.stringify(jwk.alg)} does not fit a ${jwk.kty} key`;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pub as never, format: 'jwk' });
  } catch (err) {
    return `not a valid ${jwk.kty} key: ${(err as Error).message}`;
  }
  if (!keyFits(key, alg)) return 'RSA keys must have at least 2048 bits';
  return { kid, alg, key };
}
