// cosign's layer annotations read as cosign and containers/image read them: Go's base64 (CR and
// LF skipped, nothing else), and the signer certificate taken from the certificate annotation only.
import test from 'ava';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import { fixturePath, COSIGN_REAL, loadCosignFixture } from './fixtures.ts';
import { sharedFixtures } from '../../shared-fixtures.ts';

const fixtures = sharedFixtures(test, [
  'cosign-real/dir-img-cosign-valid',
  'cosign-real/dir-img-cosign-fulcio-rekor-valid',
  'cosign-real/cosign.pub',
]);

const KEYED = 'dir-img-cosign-valid';
const KEYLESS = 'dir-img-cosign-fulcio-rekor-valid';
const SIG = 'dev.cosignproject.cosign/signature';
const CERT = 'dev.sigstore.cosign/certificate';
const CHAIN = 'dev.sigstore.cosign/chain';
const SET = 'dev.sigstore.cosign/bundle';

const wrap = (text: string, width: number, eol: string): string =>
  (text.match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join(eol) + eol;

const keyed = () =>
  compileAttestor('ci', { keys: [{ file: 'cosign.pub' }] }, { baseDir: fixturePath('', COSIGN_REAL), trustRoots: {} });
const keyless = () =>
  compileAttestor(
    'gh',
    { identities: [{ issuer: 'https://github.com/login/oauth', subject: 'mitr@redhat.com' }] },
    { baseDir: '.', trustRoots: {} },
  );

async function judgeKeyed(edit: (a: Record<string, string>) => Record<string, string>) {
  const { source, image } = loadCosignFixture(KEYED, 'test/app', edit);
  return (await verifyImage(source, image, [keyed()])).get('ci')!;
}

const base64Table: { name: string; edit: (sig: string) => string; ok: boolean }[] = [
  { name: 'as cosign stores it', edit: (s) => s, ok: true },
  { name: 'wrapped at 76 columns with LF', edit: (s) => wrap(s, 76, '\n'), ok: true },
  { name: 'wrapped at 64 columns with CRLF', edit: (s) => wrap(s, 64, '\r\n'), ok: true },
  { name: 'with a stray CR in the middle', edit: (s) => `${s.slice(0, 10)}\r${s.slice(10)}`, ok: true },
  { name: 'with a space', edit: (s) => `${s.slice(0, 10)} ${s.slice(10)}`, ok: false },
  { name: 'with a tab', edit: (s) => `${s.slice(0, 10)}\t${s.slice(10)}`, ok: false },
  { name: 'in the URL-safe alphabet', edit: (s) => s.replace(/\+/g, '-').replace(/\//g, '_'), ok: false },
  { name: 'without its padding', edit: (s) => `${s}A`.replace(/=+$/, ''), ok: false },
  { name: 'with data after the padding', edit: (s) => `${s}==AA`, ok: false },
];

for (const row of base64Table) {
  fixtures.test(
    `a cosign signature annotation ${row.name} is ${row.ok ? 'read' : 'refused as not base64'}`,
    async (t) => {
      const facts = await judgeKeyed((a) => ({ ...a, [SIG]: row.edit(a[SIG] ?? '') }));
      if (row.ok) {
        t.deepEqual(facts.rejected, []);
        t.is(facts.verified.length, 1);
      } else {
        t.deepEqual(facts.verified, []);
        t.regex(facts.rejected[0] ?? '', /layer 0: dev\.cosignproject\.cosign\/signature is not base64$/);
      }
    },
  );
}

fixtures.test(
  'a keyless signature whose signature, SET and Rekor body are wrapped still verifies at the Rekor time',
  async (t) => {
    const { source, image } = loadCosignFixture(KEYLESS, 'test/app', (a) => {
      const set = JSON.parse(a[SET] ?? '{}') as { SignedEntryTimestamp: string; Payload: { body: string } };
      set.SignedEntryTimestamp = wrap(set.SignedEntryTimestamp, 76, '\n');
      set.Payload.body = wrap(set.Payload.body, 76, '\r\n');
      return { ...a, [SIG]: wrap(a[SIG] ?? '', 76, '\n'), [SET]: JSON.stringify(set) };
    });
    const facts = (await verifyImage(source, image, [keyless()])).get('gh')!;
    t.deepEqual(facts.rejected, []);
    t.is(facts.verified[0]?.signer, 'https://github.com/login/oauth mitr@redhat.com');
  },
);

fixtures.test('the signer certificate comes from the certificate annotation alone, never from the chain', async (t) => {
  const cases: { name: string; edit: (a: Record<string, string>) => Record<string, string>; reason: RegExp }[] = [
    {
      name: 'certificate annotation without a certificate, chain holding the leaf',
      edit: (a) => ({ ...a, [CERT]: 'not a certificate', [CHAIN]: `${a[CERT]}${a[CHAIN]}` }),
      reason: /dev\.sigstore\.cosign\/certificate holds 0 PEM certificates; exactly one is expected/,
    },
    {
      name: 'two certificates in the certificate annotation',
      edit: (a) => ({ ...a, [CERT]: `${a[CERT]}${a[CHAIN]}` }),
      reason: /holds 3 PEM certificates; exactly one is expected/, // leaf, intermediate, root,
    },
    {
      name: 'a PEM block of another type',
      edit: (a) => ({ ...a, [CERT]: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }),
      reason: /holds a PEM block of type PUBLIC KEY, not CERTIFICATE/,
    },
    {
      name: 'a chain annotation without a certificate',
      edit: (a) => ({ ...a, [CHAIN]: 'garbage' }),
      reason: /dev\.sigstore\.cosign\/chain holds no PEM certificate/,
    },
  ];
  for (const c of cases) {
    const { source, image } = loadCosignFixture(KEYLESS, 'test/app', c.edit);
    const facts = (await verifyImage(source, image, [keyless()])).get('gh')!;
    t.deepEqual(facts.verified, [], c.name);
    t.regex(facts.rejected[0] ?? '', c.reason, c.name);
  }
});

fixtures.test(
  "cosign's rfc3161timestamp annotation is read strictly: malformed ones are reasons, not crashes",
  async (t) => {
    const TS = 'dev.sigstore.cosign/rfc3161timestamp';
    for (const [value, reason] of [
      ['not json', /rfc3161timestamp is not valid JSON$/],
      ['{}', /rfc3161timestamp has no SignedRFC3161TimestampBytes$/],
      ['{"SignedRFC3161TimestampBytes":"a b"}', /SignedRFC3161TimestampBytes is not base64$/],
    ] as const) {
      const facts = await judgeKeyed((a) => ({ ...a, [TS]: value }));
      t.deepEqual(facts.verified, [], value);
      t.regex(facts.rejected[0] ?? '', reason, value);
    }
  },
);
