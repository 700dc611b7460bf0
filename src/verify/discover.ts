// Finds the evidence stored for one image digest: cosign's `.sig`/`.att` tags and the digest's
// OCI 1.1 referrers. Every referrer manifest is opened (index annotations are not trusted), every
// count and size is bounded, and a registry error other than "not found" is thrown so the caller
// fails closed instead of mistaking an outage for "unsigned".
import { isNotFound, isTransient, RegistryError } from '../oci/errors.ts';
import { BUNDLE_MEDIA_TYPES, digestTag } from '../oci/evidence.ts';
import { INDEX_MEDIA_TYPES, MediaType, type Descriptor, type ImageManifest } from '../oci/types.ts';
import { DecisionBudget, DEFAULT_EVIDENCE_LIMITS, overBudget, type EvidenceLimits } from './budget.ts';
import { SignatureKeyCount, tooManySignatures } from './cosign-layer.ts';

export { BUNDLE_MEDIA_TYPES, digestTag } from '../oci/evidence.ts';
import type { EvidenceSource } from './source.ts';

export type EvidenceFormat = 'simple-signing' | 'dsse' | 'bundle' | 'notation';

/** A Notation signature manifest says so in `artifactType`, or (Notary Project ≤ 1.1) in `config.mediaType`. */
export const NOTATION_SIGNATURE = 'application/vnd.cncf.notary.signature';

/** One layer that may carry a signature, as fetched; nothing about it is verified yet. */
export interface RawEvidence {
  /** Where it was found, e.g. `tag sha256-ab12….sig layer 0`. */
  source: string;
  format: EvidenceFormat;
  bytes: Buffer;
  /** The layer descriptor's annotations (cosign keeps signatures and certificates there). */
  annotations: Record<string, string>;
  /** The layer's media type (a Notation envelope's format is decided by it). */
  mediaType?: string;
}

export interface Discovery {
  evidence: RawEvidence[];
  /** Evidence that could not be examined (too large, malformed, over the limits), as reasons. */
  skipped: string[];
}

export type DiscoveryLimits = EvidenceLimits;
export const DEFAULT_DISCOVERY_LIMITS: DiscoveryLimits = DEFAULT_EVIDENCE_LIMITS;

export function formatOfLayer(mediaType: string): EvidenceFormat | undefined {
  if (mediaType === MediaType.cosignSimpleSigning) return 'simple-signing';
  if (mediaType === MediaType.dsseEnvelope) return 'dsse';
  if (BUNDLE_MEDIA_TYPES.includes(mediaType)) return 'bundle';
  return undefined;
}

export function shortDigest(digest: string): string {
  const [alg, hex = ''] = digest.split(':');
  return hex.length > 12 ? `${alg}:${hex.slice(0, 12)}…` : digest;
}

export async function discoverEvidence(
  source: EvidenceSource,
  repository: string,
  digest: string,
  budget: DecisionBudget = new DecisionBudget(),
): Promise<Discovery> {
  const { limits } = budget;
  const skipped: string[] = [];
  const manifests = await fetchEvidenceManifests(source, repository, digest, budget, skipped);
  const wanted = selectLayers(manifests, digest, budget, skipped);
  // Each layer is judged on its own: one missing, oversized or unreadable layer is a reason next
  // to the others, never the end of the decision. An outage is remembered (the decider will not
  // take "nothing verified" for a judgement then), anything else is a bug and propagates.
  const fetched = await mapBounded(wanted, limits.concurrency, async ({ where, format, layer }) => {
    if (budget.expired()) {
      skipped.push(`${where}: not examined, ${budget.timeReason()}`);
      return undefined;
    }
    try {
      // A DSSE envelope over the signature budget is refused as soon as its keys say so, unread
      // past them: a bomb's layers cost a few KiB each, not their whole size fetched and hashed.
      const keys = format === 'dsse' ? new SignatureKeyCount(limits.signaturesPerEnvelope) : undefined;
      const maxBytes = Math.min(limits.blobBytes, layer.size);
      const bytes = await source.blob(repository, layer.digest, maxBytes, keys && ((piece) => keys.over(piece)));
      if (bytes === undefined) {
        skipped.push(`${where}: ${tooManySignatures(limits.signaturesPerEnvelope)}`);
        return undefined;
      }
      const raw: RawEvidence = {
        source: where,
        format,
        bytes,
        annotations: layer.annotations ?? {},
        mediaType: layer.mediaType,
      };
      return raw;
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      if (isTransient(err) && !isContentFault(err)) budget.noteOutage(err);
      skipped.push(
        isNotFound(err)
          ? `${where}: the registry does not have blob ${shortDigest(layer.digest)}`
          : `${where}: cannot be read: ${err.message}`,
      );
      return undefined;
    }
  });
  return { evidence: fetched.filter((e): e is RawEvidence => e !== undefined), skipped };
}

/** A blob the upstream has but that is not what its descriptor says (size, digest): a fault of the evidence, not an outage. */
function isContentFault(err: RegistryError): boolean {
  return err.code === 'SIZE_INVALID' || err.code === 'DIGEST_INVALID';
}

interface EvidenceManifest {
  label: string;
  bytes: Buffer;
  mediaType: string;
  digest: string;
  /** Referrers must name the image as their subject; cosign's tags need not. */
  isReferrer: boolean;
}

async function fetchEvidenceManifests(
  source: EvidenceSource,
  repository: string,
  digest: string,
  budget: DecisionBudget,
  skipped: string[],
): Promise<EvidenceManifest[]> {
  const { limits } = budget;
  // Evidence manifests are read whole (up to limits.manifestMaxBytes each): they count against the decision's bytes.
  const fits = (label: string, bytes: Buffer): boolean => {
    if (budget.reserveBytes(bytes.length)) return true;
    skipped.push(
      `${label}: not examined, ${overBudget(`${budget.bytes} evidence bytes already fetched, ${bytes.length} more in this manifest`, 'bytes', limits.bytes)}`,
    );
    return false;
  };
  const tag = digestTag(digest);
  const shortTag = digestTag(shortDigest(digest));
  const [sig, att, referrers] = await Promise.all([
    source.manifest(repository, `${tag}.sig`),
    source.manifest(repository, `${tag}.att`),
    source.referrers(repository, digest),
  ]);
  const manifests: EvidenceManifest[] = [];
  for (const [suffix, fetched] of [
    ['sig', sig],
    ['att', att],
  ] as const) {
    const label = `tag ${shortTag}.${suffix}`;
    if (fetched && fits(label, fetched.bytes)) manifests.push({ label, ...fetched, isReferrer: false });
  }
  const seen = new Set(manifests.map((m) => m.digest));
  let entries = referrers.manifests;
  if (entries.length > limits.referrers) {
    skipped.push(
      `referrers of ${shortDigest(digest)}: ${overBudget(`${entries.length} entries listed, only the first ${limits.referrers} were read`, 'referrers', limits.referrers)}`,
    );
    entries = entries.slice(0, limits.referrers);
  }
  const listed = entries.filter((d) => !seen.has(d.digest) && seen.add(d.digest));
  const room = Math.max(0, limits.manifests - manifests.length);
  if (listed.length > room) {
    skipped.push(
      `referrers of ${shortDigest(digest)}: ${listed.length} listed, only the first ${room} were examined, ${overBudget(`more than ${limits.manifests} evidence manifests`, 'manifests', limits.manifests)}`,
    );
  }
  // Index entries (artifactType, annotations) are only hints anyone can write: open every manifest.
  const fetched = await mapBounded(listed.slice(0, room), limits.concurrency, async (d) => ({
    descriptor: d,
    manifest: await source.manifest(repository, d.digest),
  }));
  for (const { descriptor, manifest } of fetched) {
    const label = `referrer ${shortDigest(descriptor.digest)}`;
    if (!manifest) skipped.push(`${label}: listed as a referrer but the registry does not have it`);
    else if (manifest.digest !== descriptor.digest)
      skipped.push(`${label}: registry served content hashing to ${shortDigest(manifest.digest)}`);
    else if (fits(label, manifest.bytes)) manifests.push({ label, ...manifest, isReferrer: true });
  }
  return manifests;
}

/** The layers worth fetching, within the layer and size limits; what is left out is explained in `skipped`. */
function selectLayers(
  manifests: EvidenceManifest[],
  digest: string,
  budget: DecisionBudget,
  skipped: string[],
): { where: string; format: EvidenceFormat; layer: Descriptor }[] {
  const { limits } = budget;
  let overBytes = false;
  const wanted: { where: string; format: EvidenceFormat; layer: Descriptor }[] = [];
  for (const m of manifests) {
    const manifest = parseManifest(m.bytes, m.mediaType);
    if (typeof manifest === 'string') {
      skipped.push(`${m.label}: ${manifest}`);
      continue;
    }
    if (m.isReferrer && manifest.subject?.digest !== digest) {
      // The tag-schema fallback index is a plain tag anyone with push rights can fill.
      if (hasEvidenceLayers(manifest))
        skipped.push(`${m.label}: its subject is ${manifest.subject?.digest ?? 'missing'}, not ${digest}`);
      continue;
    }
    const notation = isNotationSignature(manifest);
    if (notation && manifest.layers.length !== 1) {
      skipped.push(`${m.label}: Notation signature manifest has ${manifest.layers.length} layers, not exactly 1`);
      continue;
    }
    for (const [i, layer] of manifest.layers.entries()) {
      // Any layer of a Notation signature manifest is its envelope; what is not JWS or COSE fails integrity later.
      const format = notation ? 'notation' : formatOfLayer(layer.mediaType);
      const where = `${m.label} layer ${i}`;
      if (!format) {
        // Referrers include unrelated artifacts (SBOMs, Notation signatures): only cosign's own tags are expected to hold evidence only.
        if (!m.isReferrer) skipped.push(`${where}: unexpected media type ${layer.mediaType}`);
        continue;
      }
      if (wanted.length >= limits.layers) {
        skipped.push(
          `${where} and later layers: not examined, ${overBudget(`more than ${limits.layers} evidence layers`, 'layers', limits.layers)}`,
        );
        return wanted;
      }
      if (!(layer.size >= 0 && layer.size <= limits.blobBytes)) {
        skipped.push(
          `${where}: ${layer.size} bytes, ${overBudget(`one evidence layer of ${layer.size} bytes`, 'blobBytes', limits.blobBytes)}`,
        );
        continue;
      }
      // Declared sizes are what the fetch will accept: the decision's bytes are reserved before any is read.
      if (!budget.reserveBytes(layer.size)) {
        if (!overBytes)
          skipped.push(
            `${where} and later layers that do not fit: not fetched, ${overBudget(`${budget.bytes} evidence bytes already fetched, ${layer.size} more asked`, 'bytes', limits.bytes)}`,
          );
        overBytes = true;
        continue;
      }
      wanted.push({ where, format, layer });
    }
  }
  return wanted;
}

function hasEvidenceLayers(manifest: ImageManifest): boolean {
  return isNotationSignature(manifest) || manifest.layers.some((l) => formatOfLayer(l.mediaType) !== undefined);
}

export function isNotationSignature(manifest: ImageManifest): boolean {
  return manifest.artifactType === NOTATION_SIGNATURE || manifest.config?.mediaType === NOTATION_SIGNATURE;
}

function parseManifest(bytes: Buffer, mediaType: string): ImageManifest | string {
  if (INDEX_MEDIA_TYPES.includes(mediaType)) return `is an index (${mediaType}), not a manifest`;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'manifest is not valid JSON';
  }
  const layers = (doc as { layers?: unknown } | null)?.layers;
  if (!Array.isArray(layers) || !layers.every(isDescriptor)) return 'manifest has no valid layers list';
  return doc as ImageManifest;
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor | null;
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.mediaType === 'string' &&
    typeof x.digest === 'string' &&
    typeof x.size === 'number' &&
    (x.annotations === undefined ||
      (typeof x.annotations === 'object' &&
        x.annotations !== null &&
        Object.values(x.annotations).every((v) => typeof v === 'string')))
  );
}

async function mapBounded<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
