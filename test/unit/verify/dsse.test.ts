// cosign `.att` DSSE attestations: signature over PAE, in-toto subject, predicate carried through.
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { MediaType } from '../../../src/oci/types.ts';
import { compileAttestor } from '../../../src/verify/attestor.ts';
import { attestationBundles } from '../../../src/verify/cosign-layer.ts';
import { digestTag } from '../../../src/verify/discover.ts';
import { verifyImage } from '../../../src/verify/verify-image.ts';
import {
  inTotoStatement,
  rawSign,
  pae,
  signAttestationLayer,
  type Signer,
  type SignedLayer,
} from '../../harness/sigstore/sign.ts';
import { MemorySource } from './memory-source.ts';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyPem = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const signer: Signer = { kind: 'key', privateKey: keys.privateKey, publicKeyPem };
const ci = () => compileAttestor('ci', { keys: [{ pem: publicKeyPem }] }, { baseDir: '.', trustRoots: {} });
const SLSA = 'https://slsa.dev/provenance/v1';
const PREDICATE = {
  buildDefinition: { buildType: 'https://example.test/build', externalParameters: { ref: 'refs/heads/main' } },
  runDetails: { builder: { id: 'https://ci.example.test' } },
};

async function verifyAtt(layers: (digest: string) => SignedLayer[]) {
  const source = new MemorySource();
  const digest = source.putManifest(
    'app',
    { schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] },
    'v1',
  );
  source.putArtifact(
    'app',
    layers(digest).map((l) => ({ mediaType: MediaType.dsseEnvelope, ...l })),
    { tag: `${digestTag(digest)}.att` },
  );
  return {
    digest,
    facts: (await verifyImage(source, { registry: 'r', repository: 'app', digest }, [ci()])).get('ci')!,
  };
}

test('a signed in-toto statement naming the image yields an attestation with its predicate', async (t) => {
  const { facts } = await verifyAtt((d) => [signAttestationLayer(inTotoStatement(d, SLSA, PREDICATE), signer)]);
  t.deepEqual(facts.rejected, []);
  t.is(facts.verified.length, 1);
  t.like(facts.verified[0], { attestor: 'ci', kind: 'attestation', predicateType: SLSA });
  t.deepEqual(facts.verified[0]?.predicate, PREDICATE);
  t.regex(facts.verified[0]?.source ?? '', /\.att layer 0$/);
});

test('in-toto Statement v0.1 is accepted, and a cosign/sign/v1 statement counts as a signature', async (t) => {
  const { facts } = await verifyAtt((d) => [
    signAttestationLayer(inTotoStatement(d, SLSA, PREDICATE, 'https://in-toto.io/Statement/v0.1'), signer),
    signAttestationLayer(inTotoStatement(d, 'https://sigstore.dev/cosign/sign/v1', {}), signer),
  ]);
  t.deepEqual(
    facts.verified.map((v) => v.kind),
    ['attestation', 'signature'],
  );
});

test('a statement whose subject is another digest is rejected', async (t) => {
  const other = 'sha256:' + 'ab'.repeat(32);
  const { digest, facts } = await verifyAtt(() => [
    signAttestationLayer(inTotoStatement(other, SLSA, PREDICATE), signer),
  ]);
  t.deepEqual(facts.verified, []);
  t.true(facts.rejected[0]?.endsWith(`in-toto statement subjects name ${other}, not the served ${digest}`));
});

test('an envelope whose payload was changed after signing is rejected', async (t) => {
  const { facts } = await verifyAtt((d) => {
    const layer = signAttestationLayer(inTotoStatement(d, SLSA, PREDICATE), signer);
    const envelope = JSON.parse(layer.bytes.toString()) as { payload: string };
    envelope.payload = inTotoStatement(d, SLSA, { ...PREDICATE, tampered: true }).toString('base64');
    return [{ ...layer, bytes: Buffer.from(JSON.stringify(envelope)) }];
  });
  t.deepEqual(facts.verified, []);
  t.regex(facts.rejected[0] ?? '', /signature does not verify with any key of attestor "ci"/);
});

test('a signature over the raw payload instead of the PAE encoding is rejected', async (t) => {
  const { facts } = await verifyAtt((d) => {
    const statement = inTotoStatement(d, SLSA, PREDICATE);
    const envelope = {
      payloadType: 'application/vnd.in-toto+json',
      payload: statement.toString('base64'),
      signatures: [{ keyid: '', sig: rawSign(keys.privateKey, statement).toString('base64') }],
    };
    return [{ bytes: Buffer.from(JSON.stringify(envelope)), annotations: {} }];
  });
  t.regex(facts.rejected[0] ?? '', /signature does not verify/);
});

test('a non-in-toto payload type is rejected even when signed', async (t) => {
  const { facts } = await verifyAtt((d) => {
    const statement = inTotoStatement(d, SLSA, PREDICATE);
    const envelope = {
      payloadType: 'application/json',
      payload: statement.toString('base64'),
      signatures: [{ keyid: '', sig: rawSign(keys.privateKey, pae('application/json', statement)).toString('base64') }],
    };
    return [{ bytes: Buffer.from(JSON.stringify(envelope)), annotations: {} }];
  });
  t.regex(facts.rejected[0] ?? '', /verifies for attestor "ci", but DSSE payload type is "application\/json"/);
});

test('an envelope with several signatures is checked signature by signature', async (t) => {
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { facts } = await verifyAtt((d) => {
    const statement = inTotoStatement(d, SLSA, PREDICATE);
    const sig = (k: typeof keys.privateKey) =>
      rawSign(k, pae('application/vnd.in-toto+json', statement)).toString('base64');
    const envelope = {
      payloadType: 'application/vnd.in-toto+json',
      payload: statement.toString('base64'),
      signatures: [
        { keyid: 'x', sig: sig(stranger.privateKey) },
        { keyid: 'y', sig: sig(keys.privateKey) },
      ],
    };
    return [{ bytes: Buffer.from(JSON.stringify(envelope)), annotations: {} }];
  });
  t.is(facts.examined, 2);
  t.is(facts.verified.length, 1);
  t.regex(facts.verified[0]?.source ?? '', /layer 0 signature 1$/);
  t.regex(facts.rejected[0] ?? '', /layer 0 signature 0: signature does not verify/);
});

test('a malformed envelope is rejected with a reason, not an exception', async (t) => {
  const { facts } = await verifyAtt(() => [{ bytes: Buffer.from('{"payloadType":"x"}'), annotations: {} }]);
  t.regex(facts.rejected[0] ?? '', /not a DSSE envelope/);
});

test('the signatures of one envelope are judged over one shared payload: a valid one after others verifies', async (t) => {
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { facts } = await verifyAtt((d) => {
    const statement = inTotoStatement(d, SLSA, PREDICATE);
    const layer = signAttestationLayer(statement, signer);
    const envelope = JSON.parse(layer.bytes.toString()) as { payloadType: string; signatures: { sig: string }[] };
    const stranger = rawSign(other.privateKey, pae(envelope.payloadType, statement)).toString('base64');
    envelope.signatures = [{ sig: stranger }, { sig: stranger }, envelope.signatures[0]!];
    return [{ ...layer, bytes: Buffer.from(JSON.stringify(envelope)) }];
  });
  t.is(facts.verified.length, 1);
  t.regex(facts.verified[0]?.source ?? '', /\.att layer 0 signature 2$/);
  t.like(facts.verified[0], { kind: 'attestation', predicateType: SLSA });
  t.is(facts.rejected.filter((r) => /signature [01]: signature does not verify/.test(r)).length, 2);
});

test('the bundles of one envelope share its decoded payload; the first is built and checked whole', (t) => {
  const statement = inTotoStatement('sha256:' + 'cd'.repeat(32), SLSA, PREDICATE);
  const layer = signAttestationLayer(statement, signer);
  const envelope = JSON.parse(layer.bytes.toString()) as { signatures: unknown[] };
  envelope.signatures = [envelope.signatures[0], envelope.signatures[0], envelope.signatures[0]];
  const bundles = attestationBundles(Buffer.from(JSON.stringify(envelope)), {});
  const payloads = bundles.map((b) => (b.content.$case === 'dsseEnvelope' ? b.content.dsseEnvelope.payload : null));
  t.is(payloads.length, 3);
  t.true(payloads[0]?.equals(statement));
  t.true(payloads.every((p) => p === payloads[0]));
  const empty = { ...envelope, payload: '' };
  t.throws(() => attestationBundles(Buffer.from(JSON.stringify(empty)), {}), { message: /dsseEnvelope\.payload/ });
});
