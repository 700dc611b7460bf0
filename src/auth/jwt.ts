// Compact JWS (JWT) parsing, verification and signing with node:crypto: ES256 and RS256 only.
// Every input is bounded before it is decoded; anything unexpected is a reason, never a throw. Pure.
import { sign, verify, type KeyObject } from 'node:crypto';

export type JwtAlg = 'ES256' | 'RS256';
export const JWT_ALGS: readonly JwtAlg[] = ['ES256', 'RS256'];
/** Kubernetes tokens are 1-2 KiB and pullgate's own a few hundred bytes to a few KiB. */
export const JWT_MAX_BYTES = 12 * 1024;
const SEGMENT_RE = /^[A-Za-z0-9_-]+$/;
const MIN_RSA_BITS = 2048;

export interface ParsedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  alg: JwtAlg;
  kid: string | undefined;
  signingInput: string;
  signature: Buffer;
}

/** Whether a password looks like a JWT (three base64url segments, a JSON header): worth verifying as one. */
export function looksLikeJwt(text: string): boolean {
  return text.startsWith('eyJ') && text.split('.').length === 3 && text.length <= JWT_MAX_BYTES;
}

function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function parseJwt(text: string, maxBytes = JWT_MAX_BYTES): ParsedJwt | string {
  if (text.length > maxBytes) return `the token is longer than ${maxBytes} bytes`;
  const parts = text.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT_RE.test(p)))
    return 'not a compact JWT (three base64url segments)';
  const [h, p, s] = parts as [string, string, string];
  const header = jsonObject(h);
  if (!header) return 'the JWT header is not a JSON object';
  const payload = jsonObject(p);
  if (!payload) return 'the JWT payload is not a JSON object';
  const alg = header.alg;
  if (alg !== 'ES256' && alg !== 'RS256') return `JWT algorithm ${JSON.stringify(alg)} is not accepted (ES256, RS256)`;
  if (header.crit !== undefined) return 'JWT headers with "crit" are not accepted';
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > 256)) return 'the JWT "kid" is not a short string';
  return { header, payload, alg, kid, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
}

/** Whether `key` can verify `alg` at all: the right type, curve and size. */
export function keyFits(key: KeyObject, alg: JwtAlg): boolean {
  if (alg === 'ES256') return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS;
}

export function verifyJwt(jwt: ParsedJwt, key: KeyObject): boolean {
  if (!keyFits(key, jwt.alg)) return false;
  const input = Buffer.from(jwt.signingInput);
  if (jwt.alg === 'ES256') {
    if (jwt.signature.length !== 64) return false;
    return verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, jwt.signature);
  }
  return verify('sha256', input, key, jwt.signature);
}

/** An ES256 JWT over `claims`. */
export function signEs256(claims: object, key: KeyObject, kid: string): string {
  const header = { typ: 'JWT', alg: 'ES256', kid };
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * `exp` (required), `nbf` and `iat` against `now` (seconds) with `leeway` seconds for clock skew;
 * a reason when the token is not valid now.
 */
export function timeProblem(payload: Record<string, unknown>, now: number, leeway: number): string | undefined {
  const { exp, nbf, iat } = payload;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'the token has no expiry ("exp")';
  if (exp + leeway <= now) return `the token expired at ${new Date(exp * 1000).toISOString()}`;
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf - leeway > now)) return 'the token is not valid yet ("nbf")';
  if (iat !== undefined && (typeof iat !== 'number' || iat - leeway > now))
    return 'the token is issued in the future ("iat")';
  return undefined;
}

/** The `aud` claim as a list (a string or an array of strings). */
export function audiences(payload: Record<string, unknown>): string[] {
  const aud = payload.aud;
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string');
  return [];
}
