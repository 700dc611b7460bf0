// A real Notation OCI layout (image, legacy-form signature manifest, referrers tag index) served
// from memory, judged by verifyImage next to a cosign attestor, and a mixed requireAttestors rule.
import test from 'ava';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluate } from '../../../../src/policy/evaluate.ts';
import { ruleHash } from '../../../../src/policy/rule-hash.ts';
import type { AttestorSpec, ImageRef, RuleSpec } from '../../../../src/policy/types.ts';
import { compileAttestor, type CompiledAttestor } from '../../../../src/verify/attestor.ts';
import { verifyImage } from '../../../../src/verify/verify-image.ts';
import { MediaType } from '../../../../src/oci/types.ts';
import { publicKeyPem } from '../../policy/helpers.ts';
import { sharedFixtures } from '../../../shared-fixtures.ts';
import { fixturePath } from '../fixtures.ts';
import { MemorySource } from '../memory-source.ts';

const NOW = new Date('2026-12-01T12:00:00Z');
const fixtures = sharedFixtures(test, ['notation-real/jws-e2e-valid', 'notation-real/jws-e2e-wrong-truststore']);
const REPO = 'e2e';

function layout(folder: string, opts: { currentForm?: boolean } = {}): { source: MemorySource; image: ImageRef } {
  const dir = fixturePath(`notation-real/${folder}/`);
  const source = new MemorySource();
  const blob = (d: string) => readFileSync(`${dir}oci-layout/blobs/sha256/${d.split(':')[1]}`);
  const subject = readFileSync(`${dir}subject-manifest.json`);
  const digest = source.putManifest(REPO, subject, 'v1');
  const sigManifest = JSON.parse(readFileSync(`${dir}signature-manifest.json`, 'utf8')) as {
    config: { digest: string };
    layers: { digest: string }[];
    artifactType?: string;
  };
  for (const d of [sigManifest.config.digest, ...sigManifest.layers.map((l) => l.digest)]) source.putBlob(blob(d));
  if (opts.currentForm) {
    // The Notary Project ≥ 1.1 form: artifactType, empty config.
    const empty = source.putBlob(Buffer.from('{}'));
    source.putManifest(REPO, {
      ...sigManifest,
      artifactType: 'application/vnd.cncf.notary.signature',
      config: { ...empty, mediaType: MediaType.ociEmpty },
    });
  } else source.putManifest(REPO, readFileSync(`${dir}signature-manifest.json`));
  return { source, image: { registry: 'localhost:5000', repository: REPO, tag: 'v1', digest } };
}

function notationAttestor(folder: string, policy = 'trustpolicy.json', name = 'notary'): CompiledAttestor {
  const dir = fixturePath(`notation-real/${folder}/`);
  return compileAttestor(
    name,
    { notation: { trustStoreDir: `${dir}truststore`, trustPolicy: `${dir}${policy}` } },
    { baseDir: dir, trustRoots: {} },
  );
}

const cosign = (): CompiledAttestor =>
  compileAttestor('ci', { keys: [{ pem: publicKeyPem() }] }, { baseDir: '.', trustRoots: {} });

for (const currentForm of [false, true]) {
  fixtures.test(
    `a Notation signature in the ${currentForm ? 'artifactType' : 'legacy config.mediaType'} form is found and verified`,
    async (t) => {
      const { source, image } = layout('jws-e2e-valid', { currentForm });
      const facts = await verifyImage(source, image, [notationAttestor('jws-e2e-valid'), cosign()], { now: NOW });
      const notary = facts.get('notary');
      t.is(notary?.verified.length, 1, JSON.stringify(notary?.rejected));
      t.regex(notary?.verified[0]?.signer ?? '', /^JWS signature by "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"/);
      t.regex(
        facts.get('ci')?.rejected[0] ?? '',
        /a Notation signature; attestor "ci" verifies cosign\/Sigstore signatures only/,
      );
    },
  );
}

fixtures.test('requireAttestors mixes a Notation attestor with a cosign one (N of M)', async (t) => {
  const { source, image } = layout('jws-e2e-valid');
  const attestors = [notationAttestor('jws-e2e-valid'), cosign()];
  const facts = await verifyImage(source, image, attestors, { now: NOW });
  const rule = (req: RuleSpec['requireAttestors']): RuleSpec => ({
    evaluationMode: 'requireAttestation',
    requireAttestors: req,
  });
  const judge = (r: RuleSpec) =>
    evaluate(
      {
        name: 'default',
        rule: r,
        ruleHash: 'h',
        attestors: ['notary', 'ci'],
        tagMode: 'pin',
        enforcementMode: 'enforce',
      },
      facts,
      NOW,
    );
  t.is(judge(rule({ anyOf: ['notary', 'ci'], min: 1 })).judgement, 'allow');
  const both = judge(rule(['notary', 'ci']));
  t.is(both.judgement, 'deny');
  t.true(
    both.reasons.some((r) => /ci/.test(r)),
    both.reasons.join('\n'),
  );
});

fixtures.test(
  'a failing Notation signature is a reason naming the envelope, the certificate and the check',
  async (t) => {
    const { source, image } = layout('jws-e2e-expired-signature');
    const facts = await verifyImage(source, image, [notationAttestor('jws-e2e-expired-signature')], { now: NOW });
    const reason = facts.get('notary')?.rejected[0] ?? '';
    t.regex(
      reason,
      /^referrer sha256:[0-9a-f]{12}… layer 0: JWS signature by "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US" \(sha256 e38aea13f2b0…\): expiry failed for attestor "notary" \(statement "e2e", level strict\): digital signature has expired/,
    );
    const permissive = await verifyImage(
      source,
      image,
      [notationAttestor('jws-e2e-expired-signature', 'trustpolicy.permissive.json')],
      { now: NOW },
    );
    t.regex(
      permissive.get('notary')?.verified[0]?.signer ?? '',
      /level permissive logged: expiry: digital signature has expired/,
    );
  },
);

fixtures.test(
  'a Notation signature manifest whose layer is not an envelope fails integrity; skip satisfies nothing',
  async (t) => {
    const { source, image } = layout('jws-e2e-not-an-envelope');
    const facts = await verifyImage(
      source,
      image,
      [notationAttestor('jws-e2e-not-an-envelope', 'trustpolicy.audit.json')],
      { now: NOW },
    );
    t.regex(facts.get('notary')?.rejected[0] ?? '', /integrity failed .* is not a Notation envelope/);
    const skip = await verifyImage(
      source,
      image,
      [notationAttestor('jws-e2e-not-an-envelope', 'trustpolicy.skip.json')],
      { now: NOW },
    );
    t.regex(skip.get('notary')?.rejected[0] ?? '', /level skip, which verifies nothing and satisfies no requirement/);
  },
);

fixtures.test('the rule hash covers the Notation trust store contents', (t) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pullgate-notation-hash-'));
  try {
    cpSync(fixturePath('notation-real/jws-e2e-valid/truststore'), `${tmp}/truststore`, { recursive: true });
    const spec: AttestorSpec = {
      notation: { trustStoreDir: 'truststore', level: 'strict', trustStores: ['ca:e2e'], trustedIdentities: ['*'] },
    };
    const hash = () => {
      const compiled = compileAttestor('notary', spec, { baseDir: tmp, trustRoots: {} });
      return ruleHash(
        'default',
        { evaluationMode: 'requireAttestation', requireAttestors: ['notary'] },
        { notary: spec },
        new Map([['notary', compiled]]),
      );
    };
    const before = hash();
    t.is(hash(), before);
    writeFileSync(
      `${tmp}/truststore/x509/ca/e2e/e2e.crt`,
      readFileSync(fixturePath('notation-real/jws-e2e-wrong-truststore/truststore/x509/ca/e2e/new_e2e.crt')),
    );
    t.not(hash(), before);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

fixtures.test('notation attestor configuration errors name the field', (t) => {
  const dir = fixturePath('notation-real/jws-e2e-valid/');
  const compile = (spec: AttestorSpec) => () => compileAttestor('n', spec, { baseDir: dir, trustRoots: {} });
  t.throws(
    compile({
      notation: { trustStoreDir: 'truststore', level: 'strict', trustStores: ['ca:nope'], trustedIdentities: ['*'] },
    }),
    {
      message: /names trust store ca:nope, which is not loaded \(known: ca:e2e\)/,
    },
  );
  t.throws(compile({ notation: { trustStoreDir: 'truststore', trustPolicy: 'trustpolicy.json', level: 'strict' } }), {
    message: /either trustPolicy or an inline statement/,
  });
  t.throws(compile({ keys: [{ pem: publicKeyPem() }], notation: { trustPolicy: 'trustpolicy.json' } }), {
    message: /keys: is for cosign\/Sigstore attestors/,
  });
  t.throws(compile({ notation: { trustStoreDir: 'missing', trustPolicy: 'trustpolicy.json' } }), {
    message: /no such directory/,
  });
});
