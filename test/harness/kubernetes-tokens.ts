// A stand-in for a cluster's service-account token issuer: RSA and P-256 signing keys, the JWKS
// the API server would serve at /openid/v1/jwks, and tokens shaped like the kubelet's bound
// service-account tokens (sub, aud, exp, nbf, iat, and the "kubernetes.io" claim).
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export interface ClusterIssuer {
  issuer: string;
  /** The JWKS document (public keys only). */
  jwks: { keys: Record<string, unknown>[] };
  token(opts: TokenOptions): string;
}

export interface TokenOptions {
  namespace: string;
  serviceAccount: string;
  audience?: string | string[];
  /** Seconds from now; negative: already expired. */
  expiresIn?: number;
  alg?: 'RS256' | 'ES256';
  /** Overrides or extra claims. */
  claims?: Record<string, unknown>;
  /** Sign with a key that is not in the JWKS. */
  foreignKey?: boolean;
  kid?: string;
}

function kidOf(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ format: 'der', type: 'spki' }))
    .digest('base64url');
}

export function makeClusterIssuer(issuer = 'https://kubernetes.default.svc.cluster.local'): ClusterIssuer {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = (pub: KeyObject, alg: string) => ({ ...pub.export({ format: 'jwk' }), kid: kidOf(pub), use: 'sig', alg });
  return {
    issuer,
    jwks: { keys: [jwk(rsa.publicKey, 'RS256'), jwk(ec.publicKey, 'ES256')] },
    token(o) {
      const alg = o.alg ?? 'RS256';
      const pair = o.foreignKey ? foreign : alg === 'RS256' ? rsa : ec;
      const now = Math.floor(Date.now() / 1000);
      const header = { alg, kid: o.kid ?? kidOf(pair.publicKey) };
      const claims = {
        aud: o.audience ?? ['pullgate'],
        exp: now + (o.expiresIn ?? 3600),
        iat: now - 5,
        nbf: now - 5,
        iss: issuer,
        sub: `system:serviceaccount:${o.namespace}:${o.serviceAccount}`,
        'kubernetes.io': {
          namespace: o.namespace,
          serviceaccount: { name: o.serviceAccount, uid: '9a0c2f4e-0000-4000-8000-000000000001' },
          pod: { name: `${o.serviceAccount}-7d9f8c6b5-abcde`, uid: '9a0c2f4e-0000-4000-8000-000000000002' },
          node: { name: 'node-1', uid: '9a0c2f4e-0000-4000-8000-000000000003' },
        },
        ...o.claims,
      };
      const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const input = `${b64(header)}.${b64(claims)}`;
      const signature =
        alg === 'RS256'
          ? sign('sha256', Buffer.from(input), pair.privateKey)
          : sign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
      return `${input}.${signature.toString('base64url')}`;
    },
  };
}
