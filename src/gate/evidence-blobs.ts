// Whether bytes served as a signature or attestation really are evidence about the image they are
// served for. An evidence manifest is written by whoever can push to the repository: without this
// check a crafted `.sig` could list a small blob of a denied image and have the proxy serve it.
// Evidence that names its subject (every format here does) cannot be a filesystem layer or an
// image config. Pure; nothing is verified cryptographically here (the policy does that).
import { MediaType } from '../oci/types.ts';
import { BUNDLE_MEDIA_TYPES, COSE_MEDIA_TYPE, JWS_MEDIA_TYPE } from '../oci/evidence.ts';

type Json = Record<string, unknown>;

/** Undefined when `bytes`, served as `mediaType`, is evidence about `subject`; else why not. */
export function evidenceBindingProblem(mediaType: string, bytes: Buffer, subject: string): string | undefined {
  const [algorithm = '', hex = ''] = subject.split(':');
  if (mediaType === COSE_MEDIA_TYPE) {
    // COSE_Sign1_Tagged starts with CBOR tag 18; its payload, a JSON descriptor, names the subject.
    if (bytes[0] !== 0xd2) return 'is not a COSE_Sign1 envelope';
    return bytes.includes(Buffer.from(subject)) ? undefined : `does not name ${subject}`;
  }
  const doc = json(bytes);
  if (!doc) return `is not the JSON document its media type ${mediaType} says it is`;
  const names = (statement: unknown): boolean =>
    Array.isArray((statement as Json | undefined)?.subject) &&
    ((statement as Json).subject as unknown[]).some((s) => {
      const v = ((s as Json | null)?.digest as Json | undefined)?.[algorithm];
      return typeof v === 'string' && v.toLowerCase() === hex;
    });
  const envelopeNames = (env: unknown): boolean => {
    const payload = (env as Json | undefined)?.payload;
    return typeof payload === 'string' && names(json(Buffer.from(payload, 'base64')));
  };
  let ok: boolean;
  if (mediaType === MediaType.cosignSimpleSigning) {
    ok = ((doc.critical as Json | undefined)?.image as Json | undefined)?.['docker-manifest-digest'] === subject;
  } else if (mediaType === MediaType.dsseEnvelope) {
    ok = envelopeNames(doc);
  } else if (mediaType === 'application/vnd.in-toto+json') {
    ok = names(doc);
  } else if (BUNDLE_MEDIA_TYPES.includes(mediaType)) {
    const signed = (doc.messageSignature as Json | undefined)?.messageDigest as Json | undefined;
    ok =
      typeof signed?.digest === 'string' && algorithm === 'sha256'
        ? Buffer.from(signed.digest, 'base64').toString('hex') === hex
        : envelopeNames(doc.dsseEnvelope);
  } else if (mediaType === JWS_MEDIA_TYPE) {
    const payload = doc.payload;
    const target =
      typeof payload === 'string' ? (json(Buffer.from(payload, 'base64url'))?.targetArtifact as Json) : undefined;
    ok = target?.digest === subject;
  } else {
    return `has media type ${mediaType}, which this proxy does not serve as evidence`;
  }
  return ok ? undefined : `does not name ${subject}`;
}

function json(bytes: Buffer): Json | undefined {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
  } catch {
    return undefined;
  }
}
