import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { parseJwks, JWKS_MAX_BYTES } from '../../../src/auth/jwks.ts';
import { parseJwt } from '../../../src/auth/jwt.ts';
import { serviceAccountIdentity } from '../../../src/auth/kubernetes.ts';
import { makeClusterIssuer, type TokenOptions } from '../../harness/kubernetes-tokens.ts';

const cluster = makeClusterIssuer();
const keys = parseJwks(JSON.stringify(cluster.jwks));
const rules = { issuer: cluster.issuer, audiences: ['pullgate'], leewaySeconds: 30 };

function identify(o: TokenOptions): unknown {
  const jwt = parseJwt(cluster.token(o));
  if (typeof jwt === 'string') return jwt;
  if (typeof keys === 'string') throw new Error(keys);
  return serviceAccountIdentity(jwt, keys, rules, Math.floor(Date.now() / 1000));
}

test('a bound service-account token (RS256 or ES256) names the service account and its groups', (t) => {
  for (const alg of ['RS256', 'ES256'] as const) {
    t.deepEqual(identify({ namespace: 'team-a', serviceAccount: 'builder', alg }), {
      name: 'system:serviceaccount:team-a:builder',
      kind: 'serviceaccount',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:team-a', 'system:authenticated'],
      serviceAccount: { namespace: 'team-a', name: 'builder' },
    });
  }
  t.like(identify({ namespace: 'n', serviceAccount: 's', audience: ['other', 'pullgate'] }), {
    kind: 'serviceaccount',
  });
  t.like(identify({ namespace: 'n', serviceAccount: 's', audience: 'pullgate' }), { kind: 'serviceaccount' });
});

test('service-account tokens are refused with the reason', (t) => {
  const base = { namespace: 'team-a', serviceAccount: 'builder' };
  const table: [string, TokenOptions, RegExp][] = [
    ['signed by a key not in the JWKS', { ...base, foreignKey: true }, /no RS256 key with kid|does not verify/],
    [
      'a kid of the JWKS but another key',
      { ...base, foreignKey: true, kid: (cluster.jwks.keys[0] as { kid: string }).kid },
      /does not verify/,
    ],
    ['another issuer', { ...base, claims: { iss: 'https://other.example' } }, /issuer .*\(auth\.kubernetes\.issuer\)/],
    [
      'another audience (e.g. the API server default)',
      { ...base, audience: ['https://kubernetes.default.svc'] },
      /audience/,
    ],
    ['expired', { ...base, expiresIn: -60 }, /expired/],
    ['no expiry (a legacy secret token)', { ...base, claims: { exp: undefined } }, /no expiry/],
    ['not a service account', { ...base, claims: { sub: 'system:node:node-1' } }, /not a service account/],
    [
      'kubernetes.io disagrees with sub',
      { ...base, claims: { 'kubernetes.io': { namespace: 'kube-system' } } },
      /does not match/,
    ],
    [
      'sub with an invalid namespace',
      { ...base, claims: { sub: 'system:serviceaccount:Team_A:x' } },
      /not a service account/,
    ],
  ];
  for (const [name, o, expected] of table) t.regex(String(identify(o)), expected, name);
});

test('JWKS: public RSA and P-256 signature keys; private, weak, foreign and oversized sets refused', (t) => {
  t.is((keys as unknown[]).length, 2);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const pub = (k: typeof rsa.publicKey) => k.export({ format: 'jwk' });
  const table: [unknown, RegExp | number][] = [
    [{ keys: [pub(rsa.publicKey)] }, 1],
    [{ keys: [{ ...pub(rsa.publicKey), use: 'enc' }, pub(rsa.publicKey)] }, 1],
    [{ keys: [rsa.privateKey.export({ format: 'jwk' })] }, /private key/],
    [{ keys: [pub(small.publicKey)] }, /2048/],
    [{ keys: [pub(p384.publicKey)] }, /not accepted/],
    [{ keys: [{ ...pub(rsa.publicKey), alg: 'ES256' }] }, /does not fit/],
    [{ keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB' }] }, /2048|not a valid/],
    [{ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, /not accepted/],
    [{ keys: [] }, /no keys/],
    [{ keys: [{ ...pub(rsa.publicKey), use: 'enc' }] }, /no RSA or P-256 signature keys/],
    [{ nope: 1 }, /not a JWKS/],
    [[1, 2], /not a JWKS/],
    [{ keys: Array.from({ length: 65 }, () => pub(rsa.publicKey)) }, /more than 64/],
  ];
  for (const [doc, expected] of table) {
    const got = parseJwks(JSON.stringify(doc));
    if (typeof expected === 'number') t.is((got as unknown[]).length, expected, JSON.stringify(doc).slice(0, 60));
    else t.regex(got as string, expected, JSON.stringify(doc).slice(0, 60));
  }
  t.regex(parseJwks('{') as string, /not JSON/);
  t.regex(parseJwks(' '.repeat(JWKS_MAX_BYTES + 1)) as string, /larger/);
});
