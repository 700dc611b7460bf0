import test from 'ava';
import { generateKeyPairSync, sign } from 'node:crypto';
import { JWT_MAX_BYTES, looksLikeJwt, parseJwt, timeProblem, verifyJwt } from '../../../src/auth/jwt.ts';
import { generateTokenKey, issueToken, seal, unseal, verifyToken, type TokenKey } from '../../../src/auth/token.ts';

const NOW = 1_800_000_000;
const key = generateTokenKey();
const other = generateTokenKey();
const alice = { name: 'alice', kind: 'user' as const };
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function issue(k: TokenKey, over: Partial<Parameters<typeof issueToken>[1]> = {}): string {
  return issueToken(k, {
    identity: alice,
    access: [
      { name: 'ghcr.io/acme/app', actions: ['pull'] },
      { name: 'ghcr.io/acme/secret', actions: [] },
    ],
    service: 'pullgate',
    ttlSeconds: 300,
    now: NOW,
    ...over,
  });
}

test('a token this proxy issued verifies and carries the identity and the access, granted and refused', (t) => {
  const s = verifyToken(key, 'pullgate', issue(key), NOW + 10);
  t.like(s, {
    identity: alice,
    access: [
      { name: 'ghcr.io/acme/app', actions: ['pull'] },
      { name: 'ghcr.io/acme/secret', actions: [] },
    ],
    expiresAt: NOW + 300,
  });
  t.is(typeof s === 'object' ? s.sealed : 'x', undefined);
});

test('tokens are refused: expired, too early, another key, another service, tampered, malformed', (t) => {
  const good = issue(key);
  const [h, p, s] = good.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  const table: [string, string, number, RegExp][] = [
    ['expired', good, NOW + 300 + 31, /expired/],
    ['within leeway', good, NOW + 300 + 29, /^$/],
    ['not yet valid', issue(key, { now: NOW + 100 }), NOW, /not valid yet|future/],
    ['another key (a replica without the shared keyFile)', issue(other), NOW, /another signing key/],
    ['another service', good.replace(p, b64({ ...claims, aud: 'other' })), NOW, /signature|another issuer/],
    [
      'widened access',
      `${h}.${b64({ ...claims, access: [{ type: 'repository', name: 'ghcr.io/acme/secret', actions: ['pull'] }] })}.${s}`,
      NOW,
      /signature/,
    ],
    ['alg none', `${b64({ alg: 'none' })}.${p}.`, NOW, /three base64url|algorithm/],
    ['HS256', `${b64({ alg: 'HS256', kid: key.kid })}.${p}.${s}`, NOW, /algorithm/],
    ['two parts', `${h}.${p}`, NOW, /three/],
    ['oversized', `${h}.${'A'.repeat(JWT_MAX_BYTES)}.${s}`, NOW, /longer/],
    ['garbage payload', `${h}.${Buffer.from('not json').toString('base64url')}.${s}`, NOW, /not a JSON object/],
  ];
  for (const [name, token, now, expected] of table) {
    const got = verifyToken(key, 'pullgate', token, now);
    t.regex(typeof got === 'string' ? got : '', expected, name);
  }
  t.regex(verifyToken(key, 'other-service', good, NOW) as string, /another issuer or service/);
});

test('sealed pass-through credentials: only this key opens them, only for the same subject', (t) => {
  const c = { username: 'octocat', password: 'ghp_secret' };
  const sealed = seal(key, c, 'octocat');
  t.false(sealed.includes('ghp_'));
  t.false(Buffer.from(sealed, 'base64url').toString('latin1').includes('ghp_secret'));
  t.deepEqual(unseal(key, sealed, 'octocat'), c);
  t.is(unseal(other, sealed, 'octocat'), undefined);
  t.is(unseal(key, sealed, 'mallory'), undefined);
  t.is(unseal(key, `${sealed.slice(0, -2)}AA`, 'octocat'), undefined);
  t.is(unseal(key, 'short', 'octocat'), undefined);
  const token = issue(key, { identity: { name: 'octocat', kind: 'upstream' }, credentials: c });
  const s = verifyToken(key, 'pullgate', token, NOW);
  t.is(typeof s === 'object' ? s.identity.kind : s, 'upstream');
  t.deepEqual(unseal(key, (s as { sealed: string }).sealed, 'octocat'), c);
  t.false(Buffer.from(token.split('.')[1]!, 'base64url').toString().includes('ghp_secret'));
});

test('JWT verification: ES256 needs P-256 and 64-byte signatures, RS256 needs 2048-bit RSA', (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const make = (alg: string, k: typeof ec.privateKey) => {
    const input = `${b64({ alg })}.${b64({ sub: 'x' })}`;
    const sig =
      alg === 'ES256'
        ? sign('sha256', Buffer.from(input), { key: k, dsaEncoding: 'ieee-p1363' })
        : sign('sha256', Buffer.from(input), k);
    return parseJwt(`${input}.${sig.toString('base64url')}`);
  };
  const es = make('ES256', ec.privateKey);
  const rs = make('RS256', rsa.privateKey);
  if (typeof es === 'string' || typeof rs === 'string') return t.fail('parse');
  t.true(verifyJwt(es, ec.publicKey));
  t.true(verifyJwt(rs, rsa.publicKey));
  t.false(verifyJwt(es, rsa.publicKey), 'ES256 with an RSA key');
  t.false(verifyJwt(rs, ec.publicKey), 'RS256 with an EC key');
  t.false(verifyJwt(es, p384.publicKey), 'ES256 with P-384');
  const weak = make('RS256', small.privateKey);
  t.false(typeof weak !== 'string' && verifyJwt(weak, small.publicKey), 'RSA 1024 is refused');
  t.false(verifyJwt({ ...es, signature: es.signature.subarray(1) }, ec.publicKey));
  t.true(looksLikeJwt(`${b64({ alg: 'RS256' })}.e30.c2ln`));
  t.false(looksLikeJwt('hunter2'));
  t.false(looksLikeJwt('eyJ.a'));
});

test('time claims: exp required, leeway applied to exp, nbf and iat', (t) => {
  const table: [Record<string, unknown>, RegExp][] = [
    [{}, /no expiry/],
    [{ exp: 'soon' }, /no expiry/],
    [{ exp: NOW + 1 }, /^$/],
    [{ exp: NOW - 29 }, /^$/],
    [{ exp: NOW - 30 }, /expired/],
    [{ exp: NOW + 60, nbf: NOW + 29 }, /^$/],
    [{ exp: NOW + 60, nbf: NOW + 31 }, /not valid yet/],
    [{ exp: NOW + 60, iat: NOW + 31 }, /future/],
    [{ exp: NOW + 60, nbf: 'x' }, /not valid yet/],
  ];
  for (const [claims, expected] of table) t.regex(timeProblem(claims, NOW, 30) ?? '', expected, JSON.stringify(claims));
});
