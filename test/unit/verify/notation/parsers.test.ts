// The small strict parsers, by table: CBOR, base64url, DNs and trust policy statements.
import test from 'ava';
import { decodeBase64Url } from '../../../../src/verify/notation/base64url.ts';
import { decodeCbor } from '../../../../src/verify/notation/cbor.ts';
import { isSubsetDn, parseDn } from '../../../../src/verify/notation/dn.ts';
import {
  parseStatement,
  parseTrustPolicyDocument,
  selectStatement,
} from '../../../../src/verify/notation/trust-policy.ts';

const cborErrors: [string, string, RegExp][] = [
  ['indefinite array', '9fff', /indefinite-length/],
  ['float', 'f93c00', /float/],
  ['truncated', '5a00000010', /runs past the end|truncated/],
  ['trailing', '0000', /trailing/],
  ['deep nesting', '81'.repeat(40) + '00', /nested deeper/],
  ['huge array count', '9b00000000ffffffff', /longer than the input/],
];
for (const [name, hex, re] of cborErrors) {
  test(`CBOR refuses: ${name}`, (t) => {
    t.throws(() => decodeCbor(Buffer.from(hex, 'hex')), { message: re });
  });
}
test('CBOR refuses a repeated map key', (t) => {
  t.throws(() => decodeCbor(Buffer.from('a2010101 02'.replace(' ', ''), 'hex')), { message: /./ });
  t.throws(() => decodeCbor(Buffer.from('a201010102', 'hex').subarray(0, 5)), {
    message: /duplicate map key|truncated/,
  });
  t.throws(() => decodeCbor(Buffer.from('a201000100', 'hex')), { message: /duplicate map key 1/ });
});
test('CBOR decodes the shapes COSE uses', (t) => {
  const v = decodeCbor(Buffer.from('d28443a10126a1182181420102f64100', 'hex')) as { tag: number; value: unknown[] };
  t.is(v.tag, 18);
  t.is(v.value.length, 4);
});

const b64: [string, boolean][] = [
  ['eyJhIjoxfQ', true],
  ['eyJhIjoxfQ=', false],
  ['eyJhIjoxfQ==', false],
  ['eyJh+joxfQ', false],
  ['eyJhIjoxfR', false], // stray bits
  ['a', false],
];
for (const [text, ok] of b64) {
  test(`base64url ${JSON.stringify(text)} ${ok ? 'decodes' : 'is refused'}`, (t) => {
    if (ok) t.notThrows(() => decodeBase64Url(text, 'x'));
    else t.throws(() => decodeBase64Url(text, 'x'));
  });
}

const dns: [string, string | RegExp][] = [
  ['C=US, ST=WA, O=Notary', 'C=US,ST=WA,O=Notary'],
  ['C=US,S=WA,O=Notary,CN=e2e', 'C=US,ST=WA,O=Notary,CN=e2e'],
  ['C=US,ST=WA,O=Acme\\, Inc.', 'C=US,ST=WA,O=Acme, Inc.'],
  ['C=US,ST=WA,O=A\\2cB', 'C=US,ST=WA,O=A,B'],
  ['C=US,ST=WA', /no O/],
  ['C=US,ST=WA,O=A,O=B', /O twice/],
  ['C=US,ST=WA,O=A+CN=x', /multi-valued/],
  ['C=US,ST=WA,O=#0403', /hex-encoded/],
  ['C=US,ST=WA,O=a;b', /must be escaped/],
];
for (const [text, want] of dns) {
  test(`DN ${JSON.stringify(text)}`, (t) => {
    if (typeof want === 'string') t.is([...parseDn(text)].map(([k, v]) => `${k}=${v}`).join(','), want);
    else t.throws(() => parseDn(text), { message: want });
  });
}
test('DN matching is a subset match on exact values', (t) => {
  const cert = new Map([
    ['C', 'US'],
    ['ST', 'WA'],
    ['L', 'Seattle'],
    ['O', 'Notary'],
    ['CN', 'e2e'],
  ]);
  t.true(isSubsetDn(parseDn('C=US,ST=WA,O=Notary'), cert));
  t.true(isSubsetDn(parseDn('CN=e2e,O=Notary,L=Seattle,ST=WA,C=US'), cert));
  t.false(isSubsetDn(parseDn('C=US,ST=WA,O=notary'), cert));
  t.false(isSubsetDn(parseDn('C=US,ST=WA,O=Notary,OU=x'), cert));
});

const statements: [string, Record<string, unknown>, RegExp | undefined][] = [
  ['minimal', {}, undefined],
  ['skip with stores', { signatureVerification: { level: 'skip' } }, /must be absent when the level is skip/],
  [
    'override integrity',
    { signatureVerification: { level: 'strict', override: { integrity: 'log' } } },
    /integrity cannot be overridden/,
  ],
  [
    'override revocation skip',
    { signatureVerification: { level: 'strict', override: { revocation: 'skip' } } },
    undefined,
  ],
  [
    'override expiry skip',
    { signatureVerification: { level: 'strict', override: { expiry: 'skip' } } },
    /must be one of enforce, log/,
  ],
  ['bad level', { signatureVerification: { level: 'lenient' } }, /must be one of strict/],
  [
    'bad verifyTimestamp',
    { signatureVerification: { level: 'strict', verifyTimestamp: 'never' } },
    /always or afterCertExpiry/,
  ],
  ['bad store type', { trustStores: ['x509:e2e'] }, /is not "\{type\}:\{name\}"/],
  ['tsa only', { trustStores: ['tsa:t'] }, /needs a ca or signingAuthority store/],
  ['star with others', { trustedIdentities: ['*', 'x509.subject: C=US,ST=WA,O=A'] }, /must be the only/],
  ['other identity type', { trustedIdentities: ['x509.san: x'] }, /not supported/],
  ['missing O', { trustedIdentities: ['x509.subject: C=US,ST=WA'] }, /no O/],
  [
    'overlap',
    { trustedIdentities: ['x509.subject: C=US,ST=WA,O=A', 'x509.subject: C=US,ST=WA,O=A,OU=b'] },
    /overlapping/,
  ],
  ['unknown field', { trustedIdentity: ['*'] }, /unknown field/],
];
for (const [name, patch, want] of statements) {
  test(`trust policy statement: ${name}`, (t) => {
    const raw = {
      name: 's',
      signatureVerification: { level: 'strict' },
      trustStores: ['ca:e2e'],
      trustedIdentities: ['*'],
      ...patch,
    };
    if (want) t.throws(() => parseStatement(raw, 's', { requireScopes: false }), { message: want });
    else t.notThrows(() => parseStatement(raw, 's', { requireScopes: false }));
  });
}

test('trust policy documents: scopes select exactly, then globally; scopes are unique', (t) => {
  const st = (name: string, registryScopes: string[]) => ({
    name,
    registryScopes,
    signatureVerification: { level: 'strict' },
    trustStores: ['ca:e2e'],
    trustedIdentities: ['*'],
  });
  const doc = parseTrustPolicyDocument(
    { version: '1.0', trustPolicies: [st('exact', ['r.io/team/app']), st('global', ['*'])] },
    'doc',
  );
  t.is(selectStatement(doc, 'r.io/team/app')?.name, 'exact');
  t.is(selectStatement(doc, 'r.io/team/other')?.name, 'global');
  t.throws(() => parseTrustPolicyDocument({ version: '1.0', trustPolicies: [st('a', ['*']), st('b', ['*'])] }, 'doc'), {
    message: /scope "\*" is in both/,
  });
  t.throws(() => parseTrustPolicyDocument({ version: '1.0', trustPolicies: [st('a', ['r.io/app:v1'])] }, 'doc'), {
    message: /not a fully qualified repository URI/,
  });
  t.throws(() => parseTrustPolicyDocument({ version: '2.0', trustPolicies: [] }, 'doc'), { message: /must be "1.0"/ });
  const none = parseTrustPolicyDocument({ version: '1.0', trustPolicies: [st('exact', ['r.io/team/app'])] }, 'doc');
  t.is(selectStatement(none, 'r.io/team/other'), undefined);
});
