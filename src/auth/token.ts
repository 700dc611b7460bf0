// pullgate's own bearer tokens (the distribution token-auth flow): ES256 JWTs it signs itself,
// naming the identity and the repositories granted, short-lived. Replicas verify each other's
// tokens when they share the key file. Pass-through credentials travel sealed (AES-256-GCM) in
// the token, so any replica can use them and nobody who sees the token can read them.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import { parseJwt, signEs256, timeProblem, verifyJwt, audiences } from './jwt.ts';
import { MAX_SCOPES } from './scope.ts';
import type { Credentials, Grant, IdentityKind } from './types.ts';

export const TOKEN_ISSUER = 'pullgate';
/** Replicas' clocks may differ by this much. */
const LEEWAY_SECONDS = 30;
const KINDS: readonly IdentityKind[] = ['user', 'serviceaccount', 'upstream'];

export interface TokenKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** RFC 7638 thumbprint of the public key: tokens signed with another key are refused by kid. */
  kid: string;
  /** AES-256-GCM key for sealed pass-through credentials, derived from the signing key. */
  sealKey: Buffer;
  /** Where it came from, for the start-up log line. */
  source: 'file' | 'generated';
}

function fromPrivateKey(privateKey: KeyObject, source: TokenKey['source']): TokenKey {
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error('the token signing key must be an EC P-256 private key (openssl ecparam -name prime256v1 -genkey)');
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' });
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  const kid = createHash('sha256').update(canonical).digest('base64url');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const sealKey = Buffer.from(hkdfSync('sha256', der, 'pullgate', 'pass-through credentials v1', 32));
  return { privateKey, publicKey, kid, sealKey, source };
}

/** A PEM EC P-256 private key (PKCS#8 or SEC1), as every replica reads it from one Secret. */
export function tokenKeyFromPem(pem: string | Buffer): TokenKey {
  return fromPrivateKey(createPrivateKey(pem), 'file');
}

/** A fresh key: tokens then die with the process, and only this process accepts them. */
export function generateTokenKey(): TokenKey {
  return fromPrivateKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, 'generated');
}

/** What a verified token says. */
export interface Session {
  identity: { name: string; kind: IdentityKind };
  access: Grant[];
  /** Sealed pass-through credentials, opened only by the upstream check. */
  sealed?: string;
  expiresAt: number;
}

export interface IssueInput {
  identity: { name: string; kind: IdentityKind };
  access: Grant[];
  credentials?: Credentials;
  service: string;
  ttlSeconds: number;
  now: number;
}

export function issueToken(key: TokenKey, input: IssueInput): string {
  const { now } = input;
  return signEs256(
    {
      iss: TOKEN_ISSUER,
      sub: input.identity.name,
      aud: input.service,
      iat: now,
      nbf: now - LEEWAY_SECONDS,
      exp: now + input.ttlSeconds,
      jti: randomUUID(),
      kind: input.identity.kind,
      access: input.access.map((g) => ({ type: 'repository', name: g.name, actions: g.actions })),
      ...(input.credentials ? { upc: seal(key, input.credentials, input.identity.name) } : {}),
    },
    key.privateKey,
    key.kid,
  );
}

/** A token this proxy (or a replica with the same key) issued, still valid now; else why not. */
export function verifyToken(key: TokenKey, service: string, text: string, now: number): Session | string {
  const jwt = parseJwt(text);
  if (typeof jwt === 'string') return jwt;
  if (jwt.alg !== 'ES256' || jwt.kid !== key.kid)
    return 'the token was not issued by this proxy (another signing key: do all replicas share auth.token.keyFile?)';
  if (!verifyJwt(jwt, key.publicKey)) return 'the token signature does not verify';
  const p = jwt.payload;
  if (p.iss !== TOKEN_ISSUER || !audiences(p).includes(service)) return 'the token is for another issuer or service';
  const time = timeProblem(p, now, LEEWAY_SECONDS);
  if (time) return time;
  if (typeof p.sub !== 'string' || !KINDS.includes(p.kind as IdentityKind)) return 'the token names no identity';
  if (!Array.isArray(p.access) || p.access.length > MAX_SCOPES) return 'the token has no valid access list';
  const access: Grant[] = [];
  for (const a of p.access as unknown[]) {
    const g = a as { type?: unknown; name?: unknown; actions?: unknown };
    if (g?.type !== 'repository' || typeof g.name !== 'string' || !Array.isArray(g.actions))
      return 'the token has no valid access list';
    access.push({ name: g.name, actions: g.actions.filter((x): x is string => typeof x === 'string') });
  }
  if (p.upc !== undefined && typeof p.upc !== 'string') return 'the token carries malformed credentials';
  return {
    identity: { name: p.sub, kind: p.kind as IdentityKind },
    access,
    ...(typeof p.upc === 'string' ? { sealed: p.upc } : {}),
    expiresAt: p.exp as number,
  };
}

/** Credentials sealed for the token of `subject`: AES-256-GCM, the subject as associated data. */
export function seal(key: TokenKey, c: Credentials, subject: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key.sealKey, iv);
  cipher.setAAD(Buffer.from(subject));
  const body = Buffer.concat([cipher.update(JSON.stringify([c.username, c.password])), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

export function unseal(key: TokenKey, sealed: string, subject: string): Credentials | undefined {
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < 12 + 16 + 2) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.sealKey, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(subject));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    const text = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
    const [username, password] = JSON.parse(text) as [unknown, unknown];
    return typeof username === 'string' && typeof password === 'string' ? { username, password } : undefined;
  } catch {
    return undefined;
  }
}
