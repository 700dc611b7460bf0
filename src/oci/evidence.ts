// Where signatures and attestations live in a registry, and what they look like: the cosign tag
// scheme, the referrers tag fallback, the layer media types that carry evidence and never a
// filesystem, and the most bytes one piece of evidence may have. One copy of each, for discovery,
// the gate and the client alike.
import { MediaType } from './types.ts';

/** The largest signature payload, envelope or bundle anyone reads: evidence is small. */
export const EVIDENCE_BLOB_MAX_BYTES = 1024 * 1024;

export const BUNDLE_MEDIA_TYPES: readonly string[] = [
  MediaType.sigstoreBundleV03,
  'application/vnd.dev.sigstore.bundle+json;version=0.1',
  'application/vnd.dev.sigstore.bundle+json;version=0.2',
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
];

export const NOTATION_SIGNATURE_TYPE = 'application/vnd.cncf.notary.signature';
export const JWS_MEDIA_TYPE = 'application/jose+json';
export const COSE_MEDIA_TYPE = 'application/cose';

/** Layer media types that carry signatures or attestations, never a filesystem. */
export const EVIDENCE_LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaType.cosignSimpleSigning,
  MediaType.dsseEnvelope,
  ...BUNDLE_MEDIA_TYPES,
  'application/vnd.in-toto+json',
  NOTATION_SIGNATURE_TYPE,
  JWS_MEDIA_TYPE,
  COSE_MEDIA_TYPE,
]);

/** `sha256:ab12…` → `sha256-ab12…`: the referrers fallback tag, and the stem of cosign's tags. */
export function digestTag(digest: string): string {
  return digest.replace(':', '-');
}

/** cosign's tag for the signatures (`sig`) or attestations (`att`) of a digest. */
export function cosignTag(digest: string, kind: 'sig' | 'att'): string {
  return `${digestTag(digest)}.${kind}`;
}

const EVIDENCE_TAG_RE = /^sha256-([a-f0-9]{64})(?:\.(sig|att|sbom))?$/;

/** The digest an evidence tag belongs to, and which kind of tag it is (`index`: the referrers fallback). */
export function parseEvidenceTag(tag: string): { digest: string; kind: 'sig' | 'att' | 'sbom' | 'index' } | undefined {
  const m = EVIDENCE_TAG_RE.exec(tag);
  if (!m) return undefined;
  return { digest: `sha256:${m[1]}`, kind: (m[2] as 'sig' | 'att' | 'sbom' | undefined) ?? 'index' };
}
