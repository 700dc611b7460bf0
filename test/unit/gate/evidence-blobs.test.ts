import test from 'ava';
import { createHash } from 'node:crypto';
import { evidenceBindingProblem } from '../../../src/gate/evidence-blobs.ts';

const S = `sha256:${'c'.repeat(64)}`;
const OTHER = `sha256:${'d'.repeat(64)}`;
const hex = S.slice(7);
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
const statement = (digest: string) => ({
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ digest: { sha256: digest } }],
});

const cases: [string, string, Buffer, boolean][] = [
  [
    'a simple-signing payload naming the subject',
    'application/vnd.dev.cosign.simplesigning.v1+json',
    json({ critical: { image: { 'docker-manifest-digest': S }, type: 'cosign container image signature' } }),
    true,
  ],
  [
    'a simple-signing payload naming another image',
    'application/vnd.dev.cosign.simplesigning.v1+json',
    json({ critical: { image: { 'docker-manifest-digest': OTHER } } }),
    false,
  ],
  [
    'an image config posing as a signature',
    'application/vnd.dev.cosign.simplesigning.v1+json',
    json({ architecture: 'amd64', os: 'linux' }),
    false,
  ],
  [
    'a gzip layer posing as a signature',
    'application/vnd.dev.cosign.simplesigning.v1+json',
    Buffer.from([0x1f, 0x8b, 8, 0]),
    false,
  ],
  [
    'a DSSE envelope whose statement names the subject',
    'application/vnd.dsse.envelope.v1+json',
    json({ payload: b64(statement(hex)), signatures: [] }),
    true,
  ],
  [
    'a DSSE envelope about another image',
    'application/vnd.dsse.envelope.v1+json',
    json({ payload: b64(statement(OTHER.slice(7))), signatures: [] }),
    false,
  ],
  ['a bare in-toto statement', 'application/vnd.in-toto+json', json(statement(hex)), true],
  [
    'a message-signature bundle over the subject',
    'application/vnd.dev.sigstore.bundle.v0.3+json',
    json({
      messageSignature: {
        messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(hex, 'hex').toString('base64') },
      },
    }),
    true,
  ],
  [
    'a message-signature bundle over something else',
    'application/vnd.dev.sigstore.bundle.v0.3+json',
    json({ messageSignature: { messageDigest: { digest: createHash('sha256').update('x').digest('base64') } } }),
    false,
  ],
  [
    'a DSSE bundle naming the subject',
    'application/vnd.dev.sigstore.bundle.v0.3+json',
    json({ dsseEnvelope: { payload: b64(statement(hex)) } }),
    true,
  ],
  [
    'a Notation JWS whose payload targets the subject',
    'application/jose+json',
    json({
      payload: Buffer.from(JSON.stringify({ targetArtifact: { digest: S } })).toString('base64url'),
      protected: '',
      signature: '',
    }),
    true,
  ],
  [
    'a COSE envelope naming the subject',
    'application/cose',
    Buffer.concat([Buffer.from([0xd2, 0x84]), Buffer.from(`{"digest":"${S}"}`)]),
    true,
  ],
  [
    'a COSE envelope naming another',
    'application/cose',
    Buffer.concat([Buffer.from([0xd2, 0x84]), Buffer.from(`{"digest":"${OTHER}"}`)]),
    false,
  ],
  ['bytes that are not COSE', 'application/cose', Buffer.from(`{"digest":"${S}"}`), false],
  ['a media type never served as evidence', 'application/vnd.oci.image.layer.v1.tar', json(statement(hex)), false],
];

for (const [name, mediaType, bytes, ok] of cases) {
  test(`evidence binding: ${name}`, (t) => {
    const problem = evidenceBindingProblem(mediaType, bytes, S);
    if (ok) t.is(problem, undefined);
    else t.truthy(problem);
  });
}
