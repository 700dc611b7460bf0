// Every real Notation case in ../shared/fixtures/notation-real against every policy file its
// README lists, with the verdict and the deciding (or logged) check the Notation project asserts.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { verifyNotationSignature, type NotationOutcome } from '../../../../src/verify/notation/verify.ts';
import {
  actionsFor,
  parseTrustPolicyDocument,
  selectStatement,
  type TrustPolicyStatement,
} from '../../../../src/verify/notation/trust-policy.ts';
import { loadTrustStoreDir } from '../../../../src/verify/notation/trust-store.ts';
import { sharedFixtures } from '../../../shared-fixtures.ts';
import { fixturePath } from '../fixtures.ts';

const BASE = fixturePath('notation-real/');
/** The README states each case's state on this day. */
const NOW = new Date('2026-12-01T12:00:00Z');

interface Expected {
  policy: string;
  level: string;
  verdict: 'pass' | 'fail' | 'skipped';
  failedCheck?: string;
  logged?: string[];
  step?: string;
}
interface Case {
  case: string;
  envelope?: { file: string; mediaType: string };
  subject?: { mediaType: string; digest: string; size: number };
  signatureManifest?: { subject: { mediaType: string; digest: string; size: number } };
  artifactReference: string;
  expected: Expected[];
}

const fixtures = sharedFixtures(test, ['notation-real']);
// Without the fixtures there are no cases to list: the tests below are reported as not run.
const cases = (fixtures.present ? readdirSync(BASE, { withFileTypes: true }) : [])
  .filter((d) => d.isDirectory())
  .map((d) => JSON.parse(readFileSync(`${BASE}${d.name}/case.json`, 'utf8')) as Case);

/**
 * Timestamped cases whose TSA chain (GlobalSign) names OCSP/CRL endpoints: offline, with no CRL
 * file configured, their revocation status is unknown, which strict enforces (docs/verification.md).
 * notation-go asserts only the authentic-timestamp step for them, with network access.
 */
const TSA_REVOCATION_UNKNOWN = new Set([
  'cose-timestamped-valid/trustpolicy.json',
  'jws-expired-cert-timestamped/trustpolicy.json',
]);

function run(c: Case, policyFile: string, patch?: (s: TrustPolicyStatement) => TrustPolicyStatement): NotationOutcome {
  const dir = `${BASE}${c.case}/`;
  const doc = parseTrustPolicyDocument(JSON.parse(readFileSync(dir + policyFile, 'utf8')), policyFile);
  const statement = selectStatement(doc, c.artifactReference.split('@')[0] as string);
  if (!statement) throw new Error(`${policyFile}: no statement for ${c.artifactReference}`);
  return verifyNotationSignature({
    envelope: readFileSync(dir + (c.envelope?.file ?? 'signature-layer.txt')),
    envelopeMediaType: c.envelope?.mediaType ?? 'application/vnd.oci.image.layer.v1.tar',
    subject: (c.subject ?? c.signatureManifest?.subject) as { mediaType: string; digest: string; size: number },
    statement: patch ? patch(statement) : statement,
    trustStores: loadTrustStoreDir(`${dir}truststore`),
    now: NOW,
  });
}

fixtures.test('every case folder has expectations', (t) => {
  t.true(cases.length >= 12);
  t.true(cases.every((c) => c.expected.length > 0));
});

for (const c of cases) {
  for (const e of c.expected) {
    const id = `${c.case}/${e.policy}`;
    fixtures.test(`${id}: ${e.level} → ${e.verdict}${e.failedCheck ? ` (${e.failedCheck})` : ''}`, (t) => {
      const out = run(c, e.policy);
      if (TSA_REVOCATION_UNKNOWN.has(id)) {
        // The step notation-go asserts passes; the verdict then rests on the offline revocation rule.
        t.true(
          out.results.some((r) => r.check === 'authenticTimestamp' && r.ok),
          JSON.stringify(out.results),
        );
        t.is(out.verdict, 'fail');
        t.is(out.failure?.check, 'revocation');
        t.regex(out.failure?.message ?? '', /timestamping revocation status is unknown: certificate "CN=GlobalSign/);
        const relaxed = run(c, e.policy, (s) => ({ ...s, actions: actionsFor(s.level, { revocation: 'log' }) }));
        t.is(relaxed.verdict, 'pass');
        t.deepEqual(
          relaxed.logged.map((l) => l.check),
          ['revocation'],
        );
        t.truthy(relaxed.timestamp);
        return;
      }
      t.is(out.verdict, e.verdict, JSON.stringify(out.failure ?? out.logged));
      if (e.verdict === 'fail') t.is(out.failure?.check as string | undefined, e.failedCheck);
      if (e.verdict === 'pass')
        t.deepEqual(
          out.logged.map((l) => l.check),
          e.logged ?? [],
        );
    });
  }
}

fixtures.test('messages name the check, the certificate and what failed', (t) => {
  const byCase = (name: string) => cases.find((c) => c.case === name) as Case;
  t.regex(
    run(byCase('jws-chain-tampered'), 'trustpolicy.json').failure?.message ?? '',
    /illegal base64url character "=" at offset 242/,
  );
  t.regex(
    run(byCase('jws-e2e-expired-cert-no-timestamp'), 'trustpolicy.json').failure?.message ?? '',
    /certificate "O=Internet Widgits Pty Ltd,ST=Some-State,C=AU" validity period, it was expired at 2023-06-27T06:10:00/,
  );
  t.regex(
    run(byCase('cose-timestamp-after-cert-expiry'), 'trustpolicy.json').failure?.message ?? '',
    /timestamp can be after certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period/,
  );
  t.regex(
    run(byCase('cose-timestamped-valid'), 'trustpolicy.tsa-mismatch.json').failure?.message ?? '',
    /certificate signed by unknown authority/,
  );
  const valid = run(byCase('jws-e2e-valid'), 'trustpolicy.json');
  t.regex(valid.signer ?? '', /^JWS signature by "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US" \(sha256 e38aea13f2b0…\)$/);
});

fixtures.test('the jws-chain-valid leaf and root share a subject: the chain is linked by signature', (t) => {
  const c = cases.find((x) => x.case === 'jws-chain-valid') as Case;
  const out = run(c, 'trustpolicy.json');
  t.is(out.verdict, 'pass');
  t.true(out.results.every((r) => r.ok));
});

fixtures.test(
  'the timestamp is what rescues the expired signing certificate, and it is verified at the TSA time',
  (t) => {
    const c = cases.find((x) => x.case === 'jws-expired-cert-timestamped') as Case;
    const out = run(c, 'trustpolicy.json', (s) => ({ ...s, actions: actionsFor(s.level, { revocation: 'skip' }) }));
    t.is(out.verdict, 'pass');
    t.is(out.timestamp?.lower.toISOString(), '2024-06-18T07:21:41.000Z');
    t.is(out.timestamp?.upper.toISOString(), '2024-06-18T07:21:43.000Z');
    t.regex(out.timestamp?.tsa ?? '', /Globalsign TSA for Advanced - G4/);
  },
);

fixtures.test('permissive logs the TSA revocation gap instead of failing', (t) => {
  const c = cases.find((x) => x.case === 'cose-timestamped-valid') as Case;
  const out = run(c, 'trustpolicy.json', (s) => ({ ...s, level: 'permissive', actions: actionsFor('permissive') }));
  t.is(out.verdict, 'pass');
  t.deepEqual(
    out.logged.map((l) => l.check),
    ['revocation'],
  );
});
